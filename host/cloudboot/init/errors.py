"""The one failure type of init: its message is what follows `FATAL: ` on the console."""


class InitError(Exception):
    """A boot failure with a message for the operator (what was wrong, what was seen, what to set)."""
