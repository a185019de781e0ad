"""The ``nnaccel`` subcommands, one module each with ``register(subparsers)``."""
