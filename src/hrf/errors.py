"""The one error type users see: a single line naming the problem and the fix (the CLI exits with 2)."""


class HrfError(Exception):
    """A problem with the user's input (config, paths, data), reported as one line without a traceback."""


class ConfigError(HrfError):
    """A config that cannot be run: unknown key, wrong type, or an impossible combination."""
