"""Lazy registries by name: a component's module is imported only when it is chosen."""
from __future__ import annotations

import difflib
import importlib

from harness.errors import HarnessError


class Registry:
    """Maps a short name to "package.module:Attribute" and imports on first use."""

    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def check(self, name: str) -> str:
        """Return `name` if registered, else raise with a "did you mean" hint."""
        if name in self._entries:
            return name
        close = difflib.get_close_matches(name, self._entries, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise HarnessError(
            f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(self.names())}."
        )

    def get(self, name: str):
        module_name, attr = self._entries[self.check(name)].split(":")
        return getattr(importlib.import_module(module_name), attr)
