"""The one exception type a user can cause; the CLI prints its message and exits 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """A mistake the user can fix: the message names the problem and the fix in one line."""


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6, prefix: str = "") -> str:
    """" Did you mean 'x'?" for the known name `name` most likely meant (the same up to case, else
    the closest spelling), written after `prefix` (e.g. "mmrec:"); "" when none is close."""
    known = list(known)
    folded = {k.lower(): k for k in known}
    if name.lower() in folded:
        close = [folded[name.lower()]]
    else:
        close = difflib.get_close_matches(name, known, n=1, cutoff=cutoff)
    return f" Did you mean '{prefix}{close[0]}'?" if close else ""
