"""Data preparation: landmark detection, alignment, masks, file lists, dataset (images are read by
`inclg.io.images`).

Everything here is library code: it raises `DataError` with a message that names the file, what is
wrong and what to do; the `inclg data ...` commands turn those into one-line errors.
"""

from __future__ import annotations

from inclg.errors import DataError

__all__ = ["DataError"]
