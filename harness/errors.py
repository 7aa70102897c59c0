"""The one exception type a user can cause; the CLI prints its message and exits 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A mistake the user can fix: the message names the problem and the fix in one line."""


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """" Did you mean 'x'?" for the known name closest to `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return f" Did you mean '{close[0]}'?" if close else ""
