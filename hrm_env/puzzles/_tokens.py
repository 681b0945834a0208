"""The one token check both domains share: a grid's value is its model token."""

from __future__ import annotations

import numpy as np


def checked_tokens(values: np.ndarray, vocab_size: int, what: str, dtype: type) -> np.ndarray:
    """``values`` as ``dtype`` after checking they are integers in ``0..vocab_size - 1``.

    Raises:
        ValueError: naming ``what`` ("Sudoku tokens", "maze values", ...) for a non-integer
            dtype or a value out of range.
    """
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{what} must be integers, got dtype {values.dtype}")
    if values.size and (values.min() < 0 or values.max() >= vocab_size):
        raise ValueError(f"{what} must be 0..{vocab_size - 1}, got {values.min()}..{values.max()}")
    return values.astype(dtype)
