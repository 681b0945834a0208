"""Opening a user's puzzle file as text, and naming a line of it, shared by both domains'
readers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def at_line(path: str | Path, line: int) -> str:
    """Where a problem lies, as every reader of puzzle files says it: ``path:LINE`` (the form
    compilers and grep print, which editors and terminals turn into links)."""
    return f"{path}:{line}"


@contextmanager
def open_text(path: Path, expected: str, newline: str | None = None) -> Iterator[TextIO]:
    """Open ``path`` as UTF-8 text; a file that does not decode is a ``ValueError`` naming it.

    Python's ``UnicodeDecodeError`` (a binary file, or text in another encoding) says which
    byte failed but not in which file, and it is raised while the reader iterates, so the
    whole read runs inside this context.

    Args:
        path: the file.
        expected: what the file should be, for the message (``"a Sudoku CSV"``).
        newline: as for ``open`` (``""`` for the csv module).

    Raises:
        ValueError: ``path`` is not UTF-8 text.
    """
    try:
        with open(path, newline=newline, encoding="utf-8") as f:
            yield f
    except UnicodeDecodeError as err:
        # The byte offset in err is relative to a read buffer, not the file: left out.
        raise ValueError(
            f"{path}: not a UTF-8 text file ({err.reason}); expected {expected}"
        ) from None
