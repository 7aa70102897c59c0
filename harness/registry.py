"""Lazy registries by name: a component's module is imported only when it is chosen."""
from __future__ import annotations

import difflib
import importlib

from harness.errors import HarnessError


def _import(target: str):
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def closest(name: str, names) -> str | None:
    """The known name `name` most likely meant: the same up to case, else the closest spelling."""
    folded = {n.lower(): n for n in names}
    if name.lower() in folded:
        return folded[name.lower()]
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.5)
    return close[0] if close else None


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
        close = closest(name, list(self._entries) + [f"{p}:" for p in self._prefixes])
        hint = f" Did you mean '{close}'?" if close else ""
        raise HarnessError(
            f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(self.names())}."
        )

    def get(self, name: str):
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._prefixes and name not in self._entries:
            return _import(self._prefixes[prefix])(rest)
        return _import(self._entries[self.check(name)])
