"""The one exception type the pipeline turns into a clean error message."""


class RnnlmError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it."""
