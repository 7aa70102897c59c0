"""Lazy registries by name: a component's module is imported only when it is chosen.

A name resolves, in this order, to a registered entry (`sasrec`), a component an installed
package registers under the registry's entry point group (`sda_harness.recommenders`, name ->
"pkg.mod:Class"), a source prefix (`mmrec:FREEDOM`), or a plugin named by where it lives:
`package.module:Class` (an importable module) or `path/to/file.py:Class` (a file). Plugins (entry
points and named classes) carry an identity (`Registry.identity`): their distribution's name and
version and a sha256 of their source, which run and feature keys include.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

from protocol.errors import HarnessError, did_you_mean

FILE_MODULE_PREFIX = "sda_plugin_"  # module names of plugins loaded from files


def _import(target: str):
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def _digest(paths: list[Path], root: Path) -> str:
    """sha256 over files' relative paths and bytes (sorted, so the order of listing never matters)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def source_files(module) -> tuple[list[Path], Path]:
    """The source a class of `module` depends on, as far as we can tell: every .py file of its
    top-level package when it is in one (a helper module can change the model), else its file."""
    top = sys.modules.get(module.__name__.split(".")[0])
    package_file = getattr(top, "__file__", None) if top is not None and hasattr(top, "__path__") else None
    if package_file:
        root = Path(package_file).resolve().parent
        return [p for p in root.rglob("*.py") if "__pycache__" not in p.parts], root.parent
    path = Path(module.__file__).resolve()
    return [path], path.parent


def class_identity(cls) -> dict:
    """Where a plugin class came from: its reference, its distribution (name, version) when an
    installed package holds it, and a sha256 of its source."""
    module = sys.modules[cls.__module__]
    files, root = source_files(module)
    identity = {"class": f"{cls.__module__}:{cls.__qualname__}", "source_sha256": _digest(files, root)}
    if cls.__module__.startswith(FILE_MODULE_PREFIX):  # a file: its path says more than the made-up module
        identity["class"] = f"{Path(module.__file__).resolve()}:{cls.__qualname__}"
    dists = importlib.metadata.packages_distributions().get(cls.__module__.split(".")[0], [])
    if dists:
        identity |= {"package": dists[0], "version": importlib.metadata.version(dists[0])}
    return identity


def _file_module(path: Path, ref: str, kind: str):
    """The module of plugin file `path`, under a name derived from its resolved path (stable, so
    each process finds the same one); executed again when the file changed since it was loaded,
    so a run never keys new source while running old code."""
    path = path.resolve()
    if not path.is_file():
        raise HarnessError(f"{kind} plugin '{ref}': no file {path}; give the .py file's path relative "
                           "to the current directory or an absolute one.")
    stem = re.sub(r"\W", "_", path.stem)
    name = f"{FILE_MODULE_PREFIX}{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{stem}"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__plugin_sha256__", None) == digest:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__plugin_sha256__ = digest
    sys.modules[name] = module  # before executing: dataclasses and pickling look it up by name
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise HarnessError(f"{kind} plugin '{ref}': running {path} failed ({type(err).__name__}: {err}); "
                           f"fix the file so `python {path}` runs.") from None
    return module


class Registry:
    """Maps a short name to "package.module:Attribute" and imports on first use.

    `prefixes` maps a source prefix to "package.module:function": a name "prefix:Rest" is
    resolved by calling that function with "Rest" (it returns the component or raises a
    HarnessError), so a whole family of components (e.g. `mmrec:FREEDOM`) needs no entry each.
    `group`: the entry point group installed packages register components in. `base`:
    "package.module:Class" every plugin must subclass (imported only when a plugin is loaded, so
    this layer imports nothing above it).
    """

    def __init__(self, kind: str, entries: dict[str, str], prefixes: dict[str, str] | None = None,
                 group: str | None = None, base: str | None = None):
        self.kind = kind
        self._entries = dict(entries)
        self._prefixes = dict(prefixes or {})
        self.group = group
        self._base = base
        self._identities: dict[type, dict] = {}  # plugin classes loaded so far -> identity

    def plugins(self) -> dict[str, importlib.metadata.EntryPoint]:
        """Components installed packages register (entry points; nothing is imported). A name of
        the project's own never gives way to a package's."""
        if not self.group:
            return {}
        return {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)
                if ep.name not in self._entries}

    def origins(self) -> dict[str, str]:
        """Each registered plugin's name -> where it came from ("package version")."""
        return {name: f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value
                for name, ep in sorted(self.plugins().items())}

    def names(self) -> list[str]:
        return sorted(self._entries) + sorted(self.plugins()) + [f"{p}:<Name>" for p in sorted(self._prefixes)]

    def listing(self) -> str:
        """The names for help texts: entries, plugins with their origin, prefixes, plugin forms."""
        plugins = [f"{name} ({origin})" for name, origin in self.origins().items()]
        return " | ".join(sorted(self._entries) + plugins + [f"{p}:<Name>" for p in sorted(self._prefixes)]
                          + ["pkg.module:Class", "path/file.py:Class"])

    def _unknown(self, name: str, plugins) -> HarnessError:
        known = list(self._entries) + list(plugins) + [f"{p}:" for p in self._prefixes]
        return HarnessError(f"unknown {self.kind} '{name}'.{did_you_mean(name, known, 0.5)} "
                            f"Known: {', '.join(self.names())}; or name a class as pkg.module:Class "
                            "or path/file.py:Class.")

    def check(self, name: str) -> str:
        """Return `name` if it resolves (a plugin is imported and checked), else raise with a
        "did you mean" hint."""
        if name not in self._entries:
            self.get(name)
        return name

    def get(self, name: str):
        if name in self._entries:
            return _import(self._entries[name])
        plugins = self.plugins()
        if name in plugins:
            return self._plugin(name, plugins[name].value, plugins[name].load)
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self._prefixes:
            return _import(self._prefixes[prefix])(rest)
        left, sep, attr = name.rpartition(":")
        if not sep or not left or not attr:
            raise self._unknown(name, plugins)
        if left.endswith(".py"):
            return self._plugin(name, name, lambda: self._attribute(_file_module(Path(left), name, self.kind),
                                                                    attr, name))
        return self._plugin(name, name, lambda: self._attribute(self._module(left, name, plugins), attr, name))

    def _module(self, module: str, ref: str, plugins):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name == module.split(".")[0] and "." not in module:
                raise self._unknown(ref, plugins) from None  # e.g. a misspelt prefix: mmrc:VBPR
            raise HarnessError(f"{self.kind} plugin '{ref}': importing {module} failed ({err}); install the "
                               f"package that holds it or put it on PYTHONPATH.") from None
        except Exception as err:
            raise HarnessError(f"{self.kind} plugin '{ref}': importing {module} failed ({type(err).__name__}: "
                               f"{err}); fix the module so `python -c 'import {module}'` runs.") from None

    def _attribute(self, module, attr: str, ref: str):
        try:
            return getattr(module, attr)
        except AttributeError:
            classes = [k for k, v in vars(module).items() if isinstance(v, type)]
            raise HarnessError(f"{self.kind} plugin '{ref}': {module.__name__} has no '{attr}'."
                               f"{did_you_mean(attr, classes)} Name a class the module defines.") from None

    def _plugin(self, name: str, ref: str, load):
        """Load a plugin class, check it subclasses the layer's base, remember its identity."""
        try:
            cls = load()
        except HarnessError:
            raise
        except Exception as err:  # an entry point whose module fails to import
            raise HarnessError(f"{self.kind} plugin '{name}' ({ref}) failed to load ({type(err).__name__}: "
                               f"{err}); fix or reinstall the package that registers it.") from None
        base = _import(self._base) if self._base else None
        if base is not None and not (isinstance(cls, type) and issubclass(cls, base)):
            raise HarnessError(f"{self.kind} plugin '{name}': {ref} is not a subclass of "
                               f"{base.__module__}.{base.__qualname__}; derive the class from it.")
        if cls not in self._identities:
            self._identities[cls] = class_identity(cls)
        return cls

    def identity(self, name: str) -> dict | None:
        """A plugin's identity (class, package, version, source sha256); None for the project's
        own components, whose keys stay as they were."""
        if name in self._entries or name.partition(":")[0] in self._prefixes:
            return None
        return self._identities[self.get(name)]

    def identity_of(self, cls) -> dict | None:
        """The identity of a class this registry loaded as a plugin, None for any other."""
        return self._identities.get(cls)
