"""Output that is never half written, never stale and never one of the command's inputs.

An image folder is written into a fresh temporary folder beside its target and renamed into
place only when every file (manifest last) is written and flushed to disk; the old image, if
any, is removed only after that. An interrupted or failing write leaves the old image as it
was and removes its temporary folder. Single output files (``nnaccel run -o``) go the same
way through a temporary file and ``os.replace``.

From the moment an output is renamed into place until the command returns, ``SIGINT`` is
held back (:func:`commit_signals`), so a Ctrl-C can never turn a complete result into an
"interrupted" exit; :func:`release_signals` (called by the command-line dispatcher) drops an
interrupt that arrived in that window and says so.
"""

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from .manifest import MAX_MANIFEST_BYTES

__all__ = ["image_folder", "output_file", "check_outputs", "is_image_folder",
           "commit_signals", "release_signals", "fsync_dir"]

#: Name of the manifest that marks a folder as an nnaccel image.
MANIFEST = "manifest.json"

_previous = None       # the SIGINT handler to restore, while one is held back
_arrived = False


def _record(signum, frame):
    global _arrived
    _arrived = True


def commit_signals() -> None:
    """Hold ``SIGINT`` back from now until :func:`release_signals` (main thread only: a
    Python-level handler, so it holds whichever thread the kernel delivers the signal to)."""
    global _previous, _arrived
    if threading.current_thread() is threading.main_thread() and _previous is None:
        _arrived = False
        _previous = signal.signal(signal.SIGINT, _record)


def release_signals() -> bool:
    """Undo :func:`commit_signals`; returns whether an interrupt arrived meanwhile (and was
    dropped because the output it would have stopped was already complete)."""
    global _previous
    if _previous is None:
        return False
    signal.signal(signal.SIGINT, _previous)
    _previous = None
    return _arrived


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_image_folder(path: Path) -> bool:
    """Whether ``path`` holds an nnaccel image manifest (of any format version)."""
    manifest = Path(path) / MANIFEST
    try:
        if not manifest.is_file() or manifest.stat().st_size > MAX_MANIFEST_BYTES:
            return False
        head = json.loads(manifest.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(head, dict) and head.get("format") == "nnaccel-image"


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
    except ValueError:
        return False
    return True


def check_outputs(outputs, inputs) -> None:
    """Refuse a command whose output file or folder is, contains, or lies inside one of its
    inputs (a file written into an image folder would be a stray file in the image)."""
    for out_flag, out in outputs:
        for in_flag, path in inputs:
            if path is None:
                continue
            if os.path.realpath(path) == os.path.realpath(out) or _inside(path, out):
                raise ValueError(f"{out_flag} {out} would overwrite {in_flag} {path}: "
                                 f"choose another output")
            if os.path.isdir(path) and _inside(out, path):
                raise ValueError(f"{out_flag} {out} lies inside {in_flag} {path}: write it "
                                 f"outside that folder")


@contextlib.contextmanager
def image_folder(target, *, force: bool = False):
    """Yield an empty temporary folder; on success it replaces ``target`` as a whole.

    ``target`` may be missing, an empty folder, or an existing image (replaced, stale files
    and all). A non-empty folder that is not an image is refused unless ``force``.
    """
    target = Path(target)
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise FileExistsError(f"{target}: exists and is not a folder; choose another -o")
        if any(target.iterdir()) and not is_image_folder(target) and not force:
            raise FileExistsError(f"{target}: not empty and not an nnaccel image; choose an "
                                  f"empty or new folder, or --force to replace it whole")
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        commit_signals()
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.rename(target, old / "image")
        try:
            os.rename(tmp, target)
        except BaseException:
            if old is not None:
                os.rename(old / "image", target)
                old.rmdir()
            raise
        fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def output_file(target):
    """Yield a temporary path beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    if target.is_dir():
        raise IsADirectoryError(f"{target}: is a folder; give a file name for the output")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.partial-", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        commit_signals()
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
