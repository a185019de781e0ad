"""cocotb testbenches: run under Verilator through :func:`sim.rtl.run`."""
