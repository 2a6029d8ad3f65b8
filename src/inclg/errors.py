"""Every error INCLG raises on purpose derives from `InclgError`.

The message of each one names the file or setting, says what is wrong and what to do, in one
line, so a caller can show it as it is: the `inclg` command catches `InclgError` once and prints
``error: <message>`` with exit status 2. Anything else that escapes is a bug.

Each class keeps a built-in second base (`ValueError`, `RuntimeError`, `ImportError`) so code
that caught those before still does. The classes are also importable from where they are used
(`inclg.data.DataError`, `inclg.config.ConfigError`, `inclg.infer.PredictError`, ...).
This module imports nothing, so any module may import it.
"""

from __future__ import annotations


class InclgError(Exception):
    """Base of INCLG's errors: a problem the user can fix, described in one line."""


class DataError(InclgError, ValueError):
    """Input data cannot be used; the message names the file, the problem and the remedy."""


class ImageError(DataError):
    """A file or array cannot be read as an image or a mask."""


class PredictError(DataError):
    """A photo or mask cannot be used for a prediction; the message names it, says why and what
    to do."""


class ConfigError(InclgError, ValueError):
    """A configuration file or override is wrong; the message says which key and why."""


class CheckpointError(InclgError, ValueError):
    """A checkpoint is missing, incomplete or does not fit the configuration."""


class TrainingError(InclgError, RuntimeError):
    """Training cannot start (a missing optional package); the message says how to fix it."""


class TuneError(InclgError, ValueError):
    """The search cannot run or has no result; the message says why."""


class MissingExtraError(InclgError, ImportError):
    """An optional part of INCLG is not installed; the message names the pip command."""


__all__ = ["CheckpointError", "ConfigError", "DataError", "ImageError", "InclgError",
           "MissingExtraError", "PredictError", "TrainingError", "TuneError"]
