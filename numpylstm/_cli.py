"""What every command line of numpylstm does around its work, whatever happens to the terminal or the user.

The rules, and the one helper that applies each (a new command -- ``demo.py`` sub-commands, ``python -m
numpylstm.X`` -- uses all of them):

1. **Ctrl-C at any moment is one line, never a traceback**, even while the modules are still being imported:
   a script outside the package installs, first thing and with the standard library only (importing numpylstm
   imports NumPy, which is the slow part), a SIGINT handler that writes ``prog: interrupted`` and ends with
   ``os._exit(130)`` -- see the top of ``demo.py`` -- and runs ``main`` through ``run_cli(main, prog)``, which
   puts Python's handler back: a KeyboardInterrupt anywhere becomes ``prog: interrupted``, exit 130. (Training loops handle Ctrl-C themselves: finish the step, save, say how to continue --
   ``train.run_for_cli``; after training, ``train.SaveOnStop`` does the same while evaluating and plotting.)
2. **The reader going away is not an error**: ``run_cli`` wraps stdout and stderr (``SafeStream``). A closed
   pipe (``| head -1``: EPIPE) or a terminal that was closed (EIO, after a hang-up) stops the printing and
   nothing else: the work goes on, checkpoints are written, the exit status is the work's (``| head -1``: 0).
3. **Output that cannot be written is one line**: stdout on a full disk (``> /dev/full``: ENOSPC), or any
   other write error, stops the printing as well; at the end ``run_cli`` says ``prog: error: could not write
   the output (No space left on device)`` on stderr and exits 1 (if the work itself succeeded).
4. **The memory guard**: sizes are checked against ``train.MAX_MEMORY`` before anything big is allocated
   (``train.check_memory(nbytes, "what")``: a one-line ValueError, exit 2 through ``parser.error``); a
   ``MemoryError`` that still escapes becomes one line too (exit 1).
5. **Every file written follows ``numpylstm._files``** (never replace what the user did not ask to replace,
   atomic writes, one run per file: ``_files.Outputs``).

A new command, in full (``python -m numpylstm.X`` or a ``demo.py`` entry of COMMANDS; demo.py's ``main``
already runs every entry through ``run_cli``)::

    def run_mine(args, parser):                                  # demo.py: flags checked by argparse types
        check_memory(estimate(args), "sizes ...")                # ValueError -> parser.error (exit 2)
        with Outputs("demo.py mine") as outs:                    # numpylstm._files: claim, lock, write
            ck = outs.claim(path, "checkpoint", overwrite=args.overwrite, own=args.resume)
            outs.claim(png, "png", regenerated=True)
            trainer = Trainer(..., checkpoint_path=ck, outputs=outs)
            result, code = run_for_cli(trainer, args.resume, resume_hint="--resume")  # signals while training
            if code is not None:
                return code
            with SaveOnStop(trainer, ck) as stop:               # signals after training
                try:
                    outs.save_figure(fig, png)
                except (OSError, ValueError) as exc:            # a full disk: one line, the checkpoint is safe
                    status = demos.sine.plot_failed(exc, result.checkpoint)
            return stop.code if stop.code is not None else status

    if __name__ == "__main__":
        sys.exit(run_cli(main, "python -m numpylstm.mine"))

Exit statuses: 0 done; 1 the work failed (diverged, a file could not be written); 2 bad input (usage);
128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP) after saving what there was to save.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import threading

__all__ = ["SafeStream", "safe_streams", "run_cli", "say_error", "Parser"]

# errors of a reader that went away: printing stops, quietly (the user closed the pipe or the terminal)
GONE = {errno.EPIPE, errno.EIO, errno.ENXIO, errno.ECONNRESET}


class SafeStream:
    """A text stream whose writes survive the reader going away: the first write error points the file
    descriptor at /dev/null (so the interpreter's final flush is quiet too), sets ``broken`` and makes every
    later write a no-op. EPIPE and EIO (a closed pipe, a closed terminal) are quiet; any other error (ENOSPC:
    a full disk) is kept in ``error`` for ``run_cli`` to report at the end. Everything else is the wrapped
    stream's."""

    def __init__(self, stream):
        self._stream = stream
        self.broken = False
        self.error: OSError | None = None

    def _gone(self):
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def _guard(self, fn, *args):
        if self.broken:
            return None
        try:
            return fn(*args)
        except OSError as exc:
            if exc.errno not in GONE:
                self.error = exc
            self._gone()
        except ValueError:  # "I/O operation on closed file"
            self.broken = True
        return None

    def write(self, text):
        self._guard(self._stream.write, text)
        return len(text)

    def flush(self):
        self._guard(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class safe_streams:
    """``with safe_streams() as (out, err):`` -- ``sys.stdout`` and ``sys.stderr`` are ``SafeStream`` s for the
    block (nested use keeps the outer wrappers)."""

    def __init__(self, stdout=True, stderr=True):
        self._which = [name for name, on in (("stdout", stdout), ("stderr", stderr)) if on]

    def __enter__(self):
        self._old = {name: getattr(sys, name) for name in self._which}
        for name in self._which:
            if not isinstance(getattr(sys, name), SafeStream):
                setattr(sys, name, SafeStream(getattr(sys, name)))
        return tuple(getattr(sys, name) for name in self._which)

    def __exit__(self, *exc):
        for name in self._which:
            stream = getattr(sys, name)
            if isinstance(stream, SafeStream):
                stream.flush()
        for name, old in self._old.items():
            setattr(sys, name, old)
        return False


@functools.cache
def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse, but a usage error is a single line on stderr (exit status 2), naming --help."""

        def error(self, message):
            self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    return Parser


def __getattr__(name):  # ``from numpylstm._cli import Parser`` without importing argparse for every command
    if name == "Parser":
        return _parser_class()  # one class, made on first use
    raise AttributeError(name)


def int_at_least(minimum):
    """An argparse ``type``: an integer >= minimum, else a one-line usage error saying which."""

    def parse(text):
        import argparse

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


def say_error(text) -> None:
    """One line on stderr, whatever state stderr is in."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def run_cli(main, prog, argv=None) -> int:
    """Run ``main(argv)`` (or ``main()`` when argv is None) by the rules of the module docstring; returns the
    exit status for ``sys.exit``."""
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # nohup / a background job: keep ignoring
                signal.signal(signal.SIGINT, signal.default_int_handler)
        except (ValueError, OSError):
            pass
    with safe_streams() as (out, err):
        try:
            try:
                status = main() if argv is None else main(argv)
            finally:
                out.flush()  # a buffered line that fails only now still counts
        except KeyboardInterrupt:
            try:
                out.write("\n") if out.isatty() else None
            except Exception:
                pass
            say_error(f"{prog}: interrupted")
            return 130
        except MemoryError:
            say_error(f"{prog}: error: out of memory (the sizes asked for do not fit in this machine's memory: "
                      f"make them smaller)")
            return 1
        if out.error is not None:
            say_error(f"{prog}: error: could not write the output ({out.error.strerror or out.error})")
            if status in (0, None):
                return 1
        return 0 if status is None else status


