"""The errors the CLI maps to exit statuses; a leaf module every room may import.

Each message is one line that names the config field, file or value at fault.
"""


class ConfigError(ValueError):
    """A config field is wrong: ``<field>: <problem>; <allowed values or fix>``. Exit status 2."""


class DataError(ValueError):
    """Data missing or malformed; the message names the file or config field. Exit status 2."""


class WorkdirError(RuntimeError):
    """The workdir cannot be used (in use, other run, not writable). Exit status 2."""


class NonFiniteError(RuntimeError):
    """A loss or gradient became NaN/Inf (``train.nan_policy='stop'``). Exit status 3."""
