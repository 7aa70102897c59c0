"""The one exception type a user can cause; the CLI prints its message and exits 2."""


class HarnessError(Exception):
    """A mistake the user can fix: the message names the problem and the fix in one line."""
