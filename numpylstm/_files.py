"""The one rule for every file a command writes (checkpoints, plots, HTML pages, tables).

1. **Never replace a file the user did not ask to replace**, decided when the run starts (``Outputs.claim``:
   a one-line ``OutputRefused`` before any work) and *again at write time* (``Outputs.write``): a file is
   replaced only when

   - it is the one this run wrote last (the same inode), or the one it continues (``own``, the --resume file);
   - ``overwrite`` is given and the file is of the same kind: a numpylstm checkpoint for a checkpoint, a PNG
     for a plot, an HTML page for a page -- a checkpoint is never replaced by a plot or a page, and a file of
     another kind (notes, a script, someone else's .npz) never by anything;
   - ``regenerated`` outputs only (the sine, chars and adding plots, redrawn by every run): the file is a
     plot or page *numpylstm drew* (``MARK`` in its PNG text chunks or HTML head). A user's own ``loss.png``
     is never replaced.

   A file that appears or changes during the run (someone else's) is not replaced either: a checkpoint is
   then saved beside it (``name-2.npz``, said on stderr) so the work is kept; a plot is skipped with a line.

2. **Written atomically**: a hidden temporary file in the same folder, flushed, fsynced, ``os.replace``-d over
   the destination (``atomic_write``; matplotlib saves into the temporary file). An interrupted or failed
   write leaves the previous file as it was, never a 0-byte or half-written one. A symbolic link is followed:
   the file it points to is updated and the link stays a link.

3. **One run per file**: ``claim`` takes a lock beside the file (``.NAME.lock``, ``fcntl.flock``: the kernel
   drops it when the process ends, however it ends, so a lock left by a killed run is never in the way; the
   file holds the owner's pid and command for the message). A second run that wants the same file fails at
   once with ``OutputBusy`` (a ValueError: exit status 2), before it has done any work. The locks are released
   (and their files removed) when the ``Outputs`` block ends.

How a command follows the rule (one call each)::

    with Outputs("demo.py mycommand") as outs:              # locks released at the end, however it ends
        outs.claim(path, "checkpoint", overwrite=args.overwrite, own=args.resume)   # before training
        outs.claim(png, "png", regenerated=True)            # or overwrite=args.overwrite
        trainer = Trainer(..., outputs=outs)                # its checkpoints go through outs.write
        ...
        outs.save_figure(fig, png)                          # plots
        outs.write_text(page, html_text)                    # pages, tables

``claim`` raises ``OutputRefused`` / ``OutputBusy`` (ValueErrors with a one-line message: pass them to
``parser.error``). ``write*`` raise ``OutputRefused`` when the file changed hands during the run, ``OSError``
when the disk is full (the previous file is then intact).
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

__all__ = ["MARK", "OutputRefused", "OutputBusy", "Outputs", "atomic_write", "kind_of", "real_target"]

MARK = "numpylstm"  # PNG tEXt "Software" value prefix / HTML <meta name="generator"> of the files we draw
KINDS = ("checkpoint", "png", "html", "text")

try:
    import fcntl
except ImportError:  # Windows: fall back to an exclusive create with a pid check
    fcntl = None


class OutputRefused(ValueError):
    """A file the run may not replace (one line: which file, why, what to do)."""


class OutputBusy(OutputRefused):
    """Another live run is writing the same file."""


# --------------------------------------------------------------------------- atomic writes


def real_target(path) -> Path:
    """``path`` with symbolic links followed (a link to a missing file: the file it would create)."""
    p = Path(path)
    return Path(os.path.realpath(p)) if os.path.islink(p) else p


def _new_file_mode(path: Path) -> int:
    """The mode the file should have: the replaced file's, or 0666 minus the umask (what open() would give)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    umask = os.umask(0o022)  # the only portable way to read the umask is to set it (and put it back)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path, write, binary=True) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then move it over ``path`` in one step.

    The temporary file (``.NAME.XXXX.tmp``, hidden) is flushed and fsynced before ``os.replace``; on any
    error (or Ctrl-C) it is removed and ``path`` is untouched. A symbolic link at ``path`` is followed.
    Returns the path written (the link's target for a link).
    """
    path = real_target(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            try:
                os.fchmod(f.fileno(), _new_file_mode(path))
            except (OSError, AttributeError):  # no fchmod (Windows) or not allowed: keep mkstemp's mode
                pass
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    for stale in folder.glob(f".{path.name}.*.tmp"):  # left by a write that was killed before its rename
        try:
            stale.unlink()
        except OSError:
            pass
    try:  # make the rename itself durable; not possible on every platform
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


# --------------------------------------------------------------------------- what is there


def kind_of(path) -> str | None:
    """What the existing file at ``path`` is: "checkpoint", "png", "html", "folder", "other", or None if
    nothing is there. Plots and pages numpylstm drew are "png:numpylstm" / "html:numpylstm"."""
    p = Path(path)
    if not os.path.lexists(p):
        return None
    if p.is_dir():
        return "folder"
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError:
        return "other"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png:numpylstm" if _png_marked(p) else "png"
    if head.startswith(b"PK\x03\x04"):
        from .checkpoint import is_checkpoint

        return "checkpoint" if is_checkpoint(p) else "other"
    low = head.lstrip().lower()
    if low.startswith(b"<!doctype html") or low.startswith(b"<html"):
        return "html:numpylstm" if f'<meta name="generator" content="{MARK}'.encode() in head else "html"
    return "other"


def _png_marked(path) -> bool:
    """Does the PNG carry a tEXt "Software" chunk starting with ``MARK`` (before its image data)?"""
    try:
        with open(path, "rb") as f:
            f.read(8)
            for _ in range(64):
                head = f.read(8)
                if len(head) < 8:
                    return False
                n, kind = int.from_bytes(head[:4], "big"), head[4:]
                if kind in (b"IDAT", b"IEND"):
                    return False
                body = f.read(n)
                f.read(4)  # CRC
                if kind == b"tEXt" and body.startswith(b"Software\0" + MARK.encode()):
                    return True
    except OSError:
        pass
    return False


_WHAT = {"checkpoint": "a numpylstm checkpoint", "png": "a PNG image", "png:numpylstm": "a plot drawn by numpylstm",
         "html": "an HTML page", "html:numpylstm": "a page written by numpylstm", "folder": "a folder",
         "other": "a file of another kind"}


def _inode(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


# --------------------------------------------------------------------------- locks


def _alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class _Lock:
    """An exclusive lock on ``.NAME.lock`` beside ``path`` (see the module docstring, rule 3)."""

    def __init__(self, path: Path, command: str):
        self.file = path.parent / f".{path.name}.lock"
        self.command = command
        self.fd = None

    def _holder(self) -> str:
        try:
            pid, host, command = self.file.read_text().split(" ", 2)
            return f"pid {pid}, {command.strip()}" + ("" if host == socket.gethostname() else f" on {host}")
        except (OSError, ValueError):
            return "another process"

    def acquire(self) -> None:
        text = f"{os.getpid()} {socket.gethostname()} {self.command}\n".encode()
        for _ in range(20):
            if fcntl is not None:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise OutputBusy(self._busy()) from None
                now = _inode(self.file)
                if now is None or os.fstat(fd).st_ino != now[1]:
                    os.close(fd)  # the lock file was removed (and maybe re-made) in between: try again
                    continue
                os.ftruncate(fd, 0)
                os.write(fd, text)
                self.fd = fd
                return
            try:  # no flock: an exclusive create, a stale file (its pid is gone) removed
                fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.file.read_text().split(" ", 1)[0])
                except (OSError, ValueError):
                    pid = None
                if pid is not None and not _alive(pid):
                    try:
                        self.file.unlink()
                    except OSError:
                        pass
                    continue
                raise OutputBusy(self._busy()) from None
            os.write(fd, text)
            self.fd = fd
            return
        raise OutputBusy(self._busy())

    def _busy(self) -> str:
        target = self.file.parent / self.file.name[1:-len(".lock")]
        return (f"{target} is being written by another run ({self._holder()}): wait for it to end, or give this "
                f"run another output")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.file.unlink()
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = None


# --------------------------------------------------------------------------- the rule


class Outputs:
    """The files of one command run: claimed at the start, written by the rule, unlocked at the end.

    ``command``: how the run is named in another run's "being written by" message (e.g. "demo.py sine").
    ``warn``: where notes go (a checkpoint saved beside a file that changed hands); default stderr.
    """

    def __init__(self, command="numpylstm", warn=None):
        self.command = command
        self._warn = warn
        self._locks: dict[Path, _Lock] = {}
        self._may: set = set()  # inodes this run may replace (its own writes, its --resume file, --overwrite)
        self._rules: dict[Path, dict] = {}

    # ------------------------------------------------------------- lifetime
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def release(self):
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass

    # ------------------------------------------------------------- the decision
    def _refusal(self, path: Path, kind: str, *, overwrite=False, own=None, regenerated=False, flag=None):
        """None if ``path`` may be written now, else the one-line reason."""
        have = kind_of(path)
        if have is None:
            return None
        name = flag or str(path)
        if have == "folder":
            return f"{name} is a folder; expected a file name"
        ino = _inode(path)
        if ino is not None and ino in self._may:
            return None
        if own is not None and os.path.lexists(own) and ino == _inode(own):
            return None
        base = have.split(":")[0]
        if base != kind:
            if kind == "checkpoint" and base == "other":
                return (f"{name} exists and is not a numpylstm checkpoint; it is never replaced: choose another "
                        f"file name")
            return (f"{name} exists and is {_WHAT[have]}, not {_WHAT[kind] if kind in _WHAT else 'a ' + kind}; it "
                    f"is never replaced by one: move it away or choose another name")
        if overwrite:
            return None
        if regenerated and have.endswith(":numpylstm"):
            return None
        if kind == "checkpoint":
            from .checkpoint import _peek

            try:
                step = _peek(path)[0]
            except Exception:
                step = None
            at = f" (at step {step})" if isinstance(step, int) else ""
            return (f"{name} holds another run's checkpoint{at}: continue that run with --resume {path}, or "
                    f"replace it with --overwrite")
        if regenerated:
            return (f"{name} exists and was not drawn by numpylstm (no numpylstm mark: your own file, or one "
                    f"made before numpylstm marked its plots); it is not replaced: move it away, or pass "
                    f"--overwrite")
        return f"{name} exists; pass --overwrite to replace it"

    def claim(self, path, kind, *, overwrite=False, own=None, regenerated=False, flag=None, lock=True) -> Path:
        """Check now that ``path`` may be written (see the module docstring) and lock it for this run.

        kind: "checkpoint", "png", "html" or "text". own: the file this run continues (--resume). flag: how to
        name the file in messages (default the path). Returns the path that will be written (a link's target).
        Raises ``OutputRefused`` / ``OutputBusy`` (ValueErrors, one line).
        """
        target = real_target(path)
        if lock:
            self._lock(target)
        why = self._refusal(target, kind, overwrite=overwrite, own=own, regenerated=regenerated, flag=flag)
        if why is not None:
            self._unlock(target)
            raise OutputRefused(why)
        if os.path.exists(target):
            self._may.add(_inode(target))  # the user asked for it (own run, --overwrite, our own plot)
        self._rules[target] = {"kind": kind, "regenerated": regenerated, "flag": flag}
        return target

    def claim_new(self, path, kind="checkpoint") -> Path:
        """Claim the first of ``path``, ``stem-2.suffix``, ``stem-3.suffix`` ... that neither exists nor is
        being written by another run (a default name that never replaces anything)."""
        p, n = Path(path), 2
        while True:
            if not os.path.lexists(p):
                try:
                    return self.claim(p, kind)
                except OutputBusy:
                    pass
            p = Path(path).with_name(f"{Path(path).stem}-{n}{Path(path).suffix}")
            n += 1

    def _lock(self, target: Path):
        if target in self._locks:
            return
        lock = _Lock(target, self.command)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except OutputBusy:
            raise
        except OSError as exc:
            raise OutputRefused(f"cannot write in {target.parent} ({exc.strerror or exc})") from None
        self._locks[target] = lock

    def _unlock(self, target: Path):
        lock = self._locks.pop(target, None)
        if lock is not None:
            lock.release()

    # ------------------------------------------------------------- writing
    def _note(self, text):
        import sys

        stream = self._warn or sys.stderr
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError):
            pass

    def write(self, path, write, kind, binary=True, **rule) -> Path:
        """Write ``path`` atomically with ``write(f)``, by the rule, decided now. Returns the path written:
        for a checkpoint whose file changed hands during the run, the free name beside it it went to."""
        target = real_target(path)
        rule = {**self._rules.get(target, {}), **rule}
        rule.pop("kind", None)
        temporary_lock = target not in self._locks
        if temporary_lock:  # a file not claimed for the whole run (a shared plot): lock it while writing
            self._lock_briefly(target)
        try:
            why = self._refusal(target, kind, **rule)
            if why is not None:
                if kind != "checkpoint":
                    raise OutputRefused(why + " (it appeared or changed while this run was going)"
                                        if target in self._rules else why)
                other = self.claim_new(target, kind)
                self._note(f"note: {target} was replaced by someone else during this run ({why.split(';')[0]}); "
                           f"not replaced: the checkpoint goes to {other} instead")
                self._rules[other] = self._rules.get(target, {})
                target = other
            written = atomic_write(target, write, binary=binary)
            self._may.add(_inode(written))
            return written
        finally:
            if temporary_lock:
                self._unlock(target)

    def _lock_briefly(self, target: Path, seconds=30.0):
        import time

        deadline = time.monotonic() + seconds
        while True:
            try:
                return self._lock(target)
            except OutputBusy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def write_text(self, path, text, kind="html", **rule) -> Path:
        return self.write(path, lambda f: f.write(text), kind, binary=False, **rule)

    def save_figure(self, fig, path, dpi=100, **rule) -> Path:
        """A matplotlib figure as a PNG marked as drawn by numpylstm (its "Software" text chunk)."""
        return self.write(path, lambda f: fig.savefig(f, format="png", dpi=dpi,
                                                      metadata={"Software": f"{MARK} {self.command}"}),
                          "png", **rule)

    def save_checkpoint(self, path, save) -> Path:
        """``save(p)`` (e.g. ``lambda p: checkpoint.save_checkpoint(p, model, ...)``, itself atomic) by the
        rule: returns the path written."""
        target = real_target(path)
        if target not in self._rules:  # a default name not claimed at the start: take it now if it is free
            target = self.claim_new(target)
        why = self._refusal(target, "checkpoint", **{k: v for k, v in self._rules.get(target, {}).items()
                                                      if k != "kind"})
        if why is not None:
            other = self.claim_new(target, "checkpoint")
            self._note(f"note: {target} changed during this run ({why.split(';')[0]}); not replaced: the "
                       f"checkpoint goes to {other} instead")
            target = other
        written = real_target(save(target))
        self._may.add(_inode(written))
        return written
