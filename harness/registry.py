"""Lazy registries by name: a component's module is imported only when it is chosen."""
from __future__ import annotations

import importlib

from harness.errors import HarnessError, did_you_mean


def _import(target: str):
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


class Registry:
    """Maps a short name to "package.module:Attribute" and imports on first use.

    `prefixes` maps a source prefix to "package.module:function": a name "prefix:Rest" is
    resolved by calling that function with "Rest" (it returns the component or raises a
    HarnessError), so a whole family of components (e.g. `mmrec:FREEDOM`) needs no entry each.
    """

    def __init__(self, kind: str, entries: dict[str, str], prefixes: dict[str, str] | None = None):
        self.kind = kind
        self._entries = dict(entries)
        self._prefixes = dict(prefixes or {})

    def names(self) -> list[str]:
        return sorted(self._entries) + [f"{p}:<Name>" for p in sorted(self._prefixes)]

    def check(self, name: str) -> str:
        """Return `name` if registered (or resolvable through its prefix), else raise with a
        "did you mean" hint."""
        if name in self._entries:
            return name
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._prefixes:
            _import(self._prefixes[prefix])(rest)
            return name
        known = list(self._entries) + [f"{p}:" for p in self._prefixes]
        raise HarnessError(f"unknown {self.kind} '{name}'.{did_you_mean(name, known, 0.5)} "
                           f"Known: {', '.join(self.names())}.")

    def get(self, name: str):
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._prefixes and name not in self._entries:
            return _import(self._prefixes[prefix])(rest)
        return _import(self._entries[self.check(name)])
