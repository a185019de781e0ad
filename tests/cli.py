"""Running the ``nnaccel`` command inside a test, and checking a one-line refusal."""

import re
import shlex

from nnaccel.cli import main

__all__ = ["run_cli", "refused"]


def run_cli(line: str, capsys):
    """``nnaccel LINE``'s exit status and captured output."""
    try:
        status = main(shlex.split(line))
    except SystemExit as e:
        status = e.code
    return status, capsys.readouterr()


def refused(line: str, capsys, pattern: str) -> None:
    """``nnaccel LINE`` exits 2 with exactly one error line (progress lines in ``[`` aside)
    that matches ``pattern``."""
    status, cap = run_cli(line, capsys)
    errors = [ln for ln in cap.err.splitlines() if not ln.startswith("[")]
    assert status == 2, cap.out + cap.err
    assert len(errors) == 1 and errors[0].startswith("nnaccel: error: "), cap.err
    assert re.search(pattern, errors[0]), errors[0]
