"""Data preparation: image loading, landmark detection, alignment, masks, file lists, dataset.

Everything here is library code: it raises `DataError` with a message that names the file, what is
wrong and what to do; the `inclg data ...` commands turn those into one-line errors.
"""

from __future__ import annotations


class DataError(ValueError):
    """Input data cannot be used; the message names the file, the problem and the remedy."""


__all__ = ["DataError"]
