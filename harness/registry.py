"""Lazy registries by name: a component's module is imported only when it is chosen."""
from __future__ import annotations

import importlib

from harness.errors import HarnessError, did_you_mean


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
        raise HarnessError(f"unknown {self.kind} '{name}'.{did_you_mean(name, self._entries, 0.5)} "
                           f"Known: {', '.join(self.names())}.")

    def get(self, name: str):
        module_name, attr = self._entries[self.check(name)].split(":")
        return getattr(importlib.import_module(module_name), attr)
