"""``run_demo``: a demo.py command run in this process, its output captured (shared by the demo tests)."""

import io
from contextlib import redirect_stderr, redirect_stdout

import demo


def run_demo(argv, lines=True):
    """``python demo.py *argv`` in-process: (exit status, stdout as a list of lines (a string with
    ``lines=False``), stderr). argparse's usage errors (SystemExit) become their exit status."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = demo.main(argv)
        except SystemExit as exc:  # argparse errors
            status = exc.code
    return status, out.getvalue().splitlines() if lines else out.getvalue(), err.getvalue()
