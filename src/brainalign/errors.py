"""The one exception type that the CLI shows as a single line instead of a traceback."""


class BrainAlignError(Exception):
    """A problem with the user's input: what is wrong and what is allowed, in one line."""


class ConfigError(BrainAlignError, ValueError):
    """An invalid configuration value, unknown name or unreadable config file."""


class DataError(BrainAlignError, ValueError):
    """A missing, malformed or mismatched data file."""
