"""Safe writes: every file hrm writes appears whole or not at all, and a failure is one line.

A write goes to a temporary file in the target's own folder (same file system, so the final
``os.replace`` is atomic), is flushed and fsynced, and only then renamed over the target. Any
failure, ``KeyboardInterrupt`` included, removes the temporary file and leaves a file already
at the target untouched. Every ``OSError`` of a write comes out as one :class:`WriteError`
whose message is a single line, ``cannot write PATH: reason``.

    with atomic_open("out.csv", newline="") as f:   # text (or mode="wb" for bytes)
        csv.writer(f).writerows(rows)
    with atomic_path("solve.gif") as tmp:           # for a library that wants a path
        image.save(tmp)                             # tmp ends in .gif too
    save_figure(fig, "plot.png", dpi=110)           # matplotlib's savefig
    write_text("summary.json", text)
    check_writable("runs/x", folder=True)           # before long work: fail in a second

Logs that grow row by row (a training CSV) are written with :func:`write_text` once (header,
or the rows kept on resume) and then grown with :func:`append_text`, which adds one whole row
or, on failure, cuts the file back to where it was.

Only the standard library is imported here, so both packages may use it (``hrm_env`` must not
import torch, and ``hrm_agent`` writes its checkpoints through it).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

__all__ = [
    "WriteError",
    "append_text",
    "atomic_open",
    "atomic_path",
    "atomic_write",
    "check_writable",
    "save_figure",
    "write_bytes",
    "write_text",
]

PathLike = str | os.PathLike[str]

#: How the errors a user can act on are worded (others keep the system's own wording).
_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "its folder does not exist",
    errno.ENAMETOOLONG: "the name is too long",
}


class WriteError(OSError):
    """A file could not be written; ``str(err)`` is one line: ``cannot write PATH: reason``.

    Attributes:
        path: the file (or folder) that could not be written.
        reason: why, in words (``"read-only file system"``, ``"no space left on device"``).
        up_front: True when found by :func:`check_writable` before any work was done (a bad
            path: the command-line exit code 2), False when a write failed (exit code 1).
    """

    def __init__(
        self, path: PathLike, reason: str, *, code: int | None = None, up_front: bool = False
    ) -> None:
        super().__init__(code, reason, os.fspath(path))
        self.path = Path(path)
        self.reason = reason
        self.up_front = up_front

    @property
    def exit_code(self) -> int:
        """2 for a bad path found up front, 1 for a write that failed while running."""
        return 2 if self.up_front else 1

    def __str__(self) -> str:
        return f"cannot write {os.fspath(self.path)}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        # OSError pickles its (errno, strerror, filename) args; rebuild from our own fields so
        # a WriteError raised in a worker process arrives whole.
        return (_rebuild, (os.fspath(self.path), self.reason, self.errno, self.up_front))


def _rebuild(path: str, reason: str, code: int | None, up_front: bool) -> WriteError:
    return WriteError(path, reason, code=code, up_front=up_front)


def _reason(err: OSError) -> str:
    """The words for an ``OSError``, without the path (the message names it once)."""
    if isinstance(err, WriteError):
        return err.reason
    if err.errno in _REASONS:
        return _REASONS[err.errno]
    text = err.strerror or str(err) or type(err).__name__
    return text[:1].lower() + text[1:]


def _as_write_error(path: Path, err: OSError) -> WriteError:
    if isinstance(err, WriteError):
        return err
    return WriteError(path, _reason(err), code=err.errno)


# --------------------------------------------------------------------------- preflight


def _nearest_existing(folder: Path) -> tuple[Path, list[Path]]:
    """The nearest ancestor of ``folder`` (itself included) that exists, and those missing."""
    missing: list[Path] = []
    current = folder
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    return current, missing


def _probe(folder: Path) -> None:
    """Create and remove a file in ``folder``: the one test of writability the OS answers
    truly (permission bits, ACLs, a read-only mount and root all agree with it)."""
    fd, tmp = _create_temp(folder, ".hrm-write-check")
    os.close(fd)
    os.unlink(tmp)


def check_writable(path: PathLike, *, folder: bool = False, create: bool = True) -> Path:
    """Check, before any long work, that ``path`` can be written; nothing is left behind.

    Args:
        path: the file to write, or with ``folder=True`` the folder to write into.
        folder: whether ``path`` is a folder (``hrm train --out-dir``) rather than a file.
        create: whether missing folders will be created by the write (as every hrm writer
            does); when False a missing folder is an error.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        WriteError: with ``up_front=True``, naming ``path`` and the reason: a folder where a
            file is expected (or a file where a folder is), a file among the parent folders,
            a missing folder that will not or cannot be created, a folder that is not
            writable (permission denied, read-only file system).
    """
    path = Path(path)
    if folder and os.path.lexists(path) and not path.is_dir():
        raise WriteError(path, "it is a file, not a folder", up_front=True)
    if not folder and path.is_dir():
        raise WriteError(path, "it is a folder; give a file name", up_front=True)
    target = path if folder else path.parent
    existing, missing = _nearest_existing(target)
    if not existing.is_dir():
        raise WriteError(path, f"{existing} is a file, not a folder", up_front=True)
    if missing and not create:
        raise WriteError(path, f"folder {target} does not exist", up_front=True)
    try:
        _probe(existing)
    except OSError as err:
        # ENOENT from creating a file in a folder that exists (/proc): no "missing folder".
        why = "no file can be made there" if err.errno == errno.ENOENT else _reason(err)
        if missing:
            reason = f"folder {missing[-1]} cannot be created: {existing} is not writable ({why})"
        else:
            reason = f"folder {existing} is not writable ({why})"
        raise WriteError(path, reason, code=err.errno, up_front=True) from None
    return path


# --------------------------------------------------------------------------- atomic writes


def _create_temp(folder: Path, name: str, suffix: str = "") -> tuple[int, Path]:
    """Create a new, empty, hidden file in ``folder``; its mode follows the umask, as a file
    made by ``open(path, "w")`` would (``tempfile.mkstemp`` makes it private, 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        # A long name is cut so that the temporary one stays within the usual 255 bytes.
        tmp = folder / f".{name[:120]}.{secrets.token_hex(4)}.tmp{suffix[:20]}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _fsync_folder(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk; best effort
    # (Windows cannot open a folder, some file systems refuse to sync one).
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _prepare(path: PathLike, parents: bool) -> Path:
    path = Path(path)
    if path.is_dir():
        raise WriteError(path, "it is a folder; give a file name")
    existing, missing = _nearest_existing(path.parent)
    if not existing.is_dir():
        # mkdir would say "File exists" (or "Not a directory") without naming which part.
        raise WriteError(path, f"{existing} is a file, not a folder")
    if missing and parents:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _as_write_error(path, err) from err
    return path


@contextmanager
def atomic_path(path: PathLike, *, parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for a writer that wants a path; on a clean
    exit it is fsynced and renamed over ``path``.

    The temporary name ends in ``path``'s suffix, so writers that pick the format from the
    name (Pillow, imageio, matplotlib's ``savefig``) pick the right one. The file exists
    (empty) when the block starts; the writer may overwrite or replace it.

    Args:
        path: the file to write.
        parents: create missing parent folders first.

    Raises:
        WriteError: for any ``OSError`` raised in the block or while moving the file into
            place. Other exceptions pass through unchanged; in every failure the temporary
            file is removed and a file already at ``path`` is left as it was.
    """
    path = _prepare(path, parents)
    try:
        fd, tmp = _create_temp(path.parent, path.name, path.suffix)
    except OSError as err:
        raise _as_write_error(path, err) from err
    os.close(fd)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        raise _as_write_error(path, err) from err
    except BaseException:
        _remove(tmp)
        raise
    _fsync_folder(path.parent)


def _remove(tmp: Path) -> None:
    with suppress(OSError):
        os.unlink(tmp)


@contextmanager
def atomic_open(
    path: PathLike,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    newline: str | None = None,
    parents: bool = True,
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; a clean exit moves it into place.

    Args:
        path: the file to write.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: text encoding (ignored for bytes).
        newline: as for :func:`open` (``""`` for the :mod:`csv` module).
        parents: create missing parent folders first.

    Raises:
        WriteError: for any ``OSError`` raised in the block (a full disk while writing) or
            while flushing, syncing and renaming; the temporary file is removed and a file
            already at ``path`` is untouched. Other exceptions pass through, cleaned up the
            same way.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode must be 'w' or 'wb', got {mode!r}")
    binary = mode == "wb"
    with atomic_path(path, parents=parents) as tmp:
        f = open(  # noqa: SIM115 - closed below, before the rename
            tmp,
            mode,
            encoding=None if binary else encoding,
            newline=None if binary else newline,
        )
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
            f.close()
        except BaseException:
            # A full disk fails the write and then again the close's flush of the same
            # buffer: one error is enough (atomic_path reports the first).
            with suppress(OSError):
                f.close()
            raise


def atomic_write(path: PathLike, write: Callable[[Path], object], *, parents: bool = True) -> Path:
    """Call ``write(tmp)`` on a temporary path (same suffix) and move it into place.

    For one-call writers: ``atomic_write(p, lambda tmp: torch.save(state, tmp))``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        WriteError: as :func:`atomic_path`.
    """
    with atomic_path(path, parents=parents) as tmp:
        write(tmp)
    return Path(path)


def save_figure(figure: Any, path: PathLike, **kwargs: Any) -> Path:
    """``figure.savefig(path, **kwargs)`` for a matplotlib figure, atomically.

    The format is given from ``path``'s suffix (PNG without one), as ``savefig`` would pick
    it from the real name; matplotlib itself is not imported here.

    Raises:
        WriteError: as :func:`atomic_path`.
    """
    kwargs.setdefault("format", Path(path).suffix[1:].lower() or "png")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, **kwargs)
    return Path(path)


def write_text(
    path: PathLike, text: str, *, encoding: str = "utf-8", newline: str | None = None
) -> Path:
    """Write ``text`` to ``path`` atomically (``newline=""`` writes ``\\n`` as is everywhere).

    Raises:
        WriteError: as :func:`atomic_open`.
    """
    with atomic_open(path, encoding=encoding, newline=newline) as f:
        f.write(text)
    return Path(path)


def write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Raises:
        WriteError: as :func:`atomic_open`.
    """
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def append_text(path: PathLike, text: str, *, encoding: str = "utf-8", fsync: bool = False) -> Path:
    """Append ``text`` (whole rows) to an existing file, all of it or none of it.

    The file is first made with :func:`write_text`; each row then costs one small write
    instead of rewriting the file. Should the append fail (a full disk), the file is cut back
    to its length before, so it never ends in half a row.

    Args:
        path: the file, which must exist.
        text: what to add, newline included (``csv`` rows written with ``newline=""``
            semantics: the text is written as is, without newline translation).
        encoding: text encoding.
        fsync: sync to disk after each append (a log that must survive a power cut; off by
            default: a crash then loses at most the last rows, never the file).

    Raises:
        WriteError: naming ``path``, also when the file does not exist yet.
    """
    path = Path(path)
    data = text.encode(encoding)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise WriteError(path, "the file does not exist (write it whole first)") from None
    except OSError as err:
        raise _as_write_error(path, err) from err
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        except BaseException:
            with suppress(OSError):
                os.ftruncate(fd, size)
            raise
    except OSError as err:
        raise _as_write_error(path, err) from err
    finally:
        os.close(fd)
    return path
