"""The one exception type for problems a user can fix.

Anything raised as :class:`CifarkitError` is shown by the CLI as a single line and
exits with code 2; every other exception is a bug and keeps its traceback.
"""


class CifarkitError(Exception):
    """A problem the user can fix (bad config, missing data, corrupt file, ...).

    The message must name the problem and the fix in one line.
    """


class ConfigError(CifarkitError):
    """A configuration file is missing, malformed or fails validation."""


class DataError(CifarkitError):
    """A data source is missing, malformed, corrupt or unsafe."""
