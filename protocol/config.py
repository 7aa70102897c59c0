"""One config system: dataclasses with defaults, YAML files under configs/, key=value overrides."""
from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import yaml

from protocol.errors import HarnessError, did_you_mean

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
DEFAULT_PROFILE = "mini"


def artifacts_dir() -> Path:
    """Where prepared data sets, feature sets and checkpoints live (not tracked by git)."""
    return Path(os.environ.get("HARNESS_ARTIFACTS", REPO_ROOT / "artifacts"))


def raw_dir() -> Path:
    """Where the raw source files of the paper profile are (relative paths in dataset configs)."""
    return Path(os.environ.get("HARNESS_RAW", REPO_ROOT / "raw"))


def results_dir() -> Path:
    return Path(os.environ.get("HARNESS_RESULTS", REPO_ROOT / "results"))


def profile_name(name: str | None = None) -> str:
    return name or os.environ.get("HARNESS_PROFILE", DEFAULT_PROFILE)


def load_yaml(path: Path) -> dict:
    if not path.exists():
        raise HarnessError(f"config file {path} does not exist; create it or check the name.")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise HarnessError(f"{path} is not valid YAML ({err}); fix the file.") from None


# Config groups an installed package may add to: group -> entry point group. An entry point's
# name is the config's name, its value "pkg.module:attribute" names the path (str or Path) of a
# YAML file with the group's keys; a relative path is relative to that module's folder.
PLUGIN_GROUPS = {"datasets": "sda_harness.datasets"}


def _plugin_entry_points(group: str) -> dict[str, list]:
    """{name: [entry points]} of the packages that add configs to `group` (nothing imported yet)."""
    if group not in PLUGIN_GROUPS:
        return {}
    from importlib.metadata import entry_points

    found: dict[str, list] = {}
    for ep in entry_points(group=PLUGIN_GROUPS[group]):
        if all(other.value != ep.value for other in found.get(ep.name, [])):  # one package seen twice
            found.setdefault(ep.name, []).append(ep)
    return found


def _origin(ep) -> str:
    dist = getattr(ep, "dist", None)
    package = f"package {dist.name} {dist.version}" if dist else "an installed package"
    return f"{package} (entry point {ep.group}: {ep.name} = {ep.value})"


def _plugin_file(ep) -> Path:
    """The YAML file an entry point names, checked: importable, a path, an existing file."""
    import importlib

    try:
        value = ep.load()
        module_file = getattr(importlib.import_module(ep.module), "__file__", None)
    except Exception as err:  # a plugin's import may fail in any way: name it, never crash
        raise HarnessError(f"{_origin(ep)} cannot be loaded ({type(err).__name__}: {err}); "
                           "fix or reinstall that package.") from None
    if not isinstance(value, (str, Path)):
        raise HarnessError(f"{_origin(ep)} is a {type(value).__name__}, not the path of a YAML file; "
                           "point it at a str or Path.")
    path = Path(value).expanduser()
    if not path.is_absolute() and module_file:
        path = Path(module_file).parent / path
    if not path.is_file():
        raise HarnessError(f"{_origin(ep)} names {path}, which is not a file; ship the YAML file in "
                           "the package or fix the path.")
    return path


def config_names(group: str) -> list[str]:
    """configs/<group>/*.yaml and, for PLUGIN_GROUPS, the names installed packages register."""
    return sorted({p.stem for p in (CONFIG_DIR / group).glob("*.yaml")} | set(_plugin_entry_points(group)))


def config_origin(group: str, name: str) -> str:
    """Where config `name` comes from: its file in the repository or the package that ships it."""
    plugins = _plugin_entry_points(group).get(name)
    return _origin(plugins[0]) if plugins else f"configs/{group}/{name}.yaml"


def config_path(group: str, name: str) -> Path:
    """The YAML file of config `name`: configs/<group>/<name>.yaml or a plugin's file. A name that
    both the repository and a package (or two packages) define is refused: neither may shadow."""
    built_in = CONFIG_DIR / group / f"{name}.yaml"
    plugins = _plugin_entry_points(group).get(name, [])
    if plugins and (built_in.exists() or len(plugins) > 1):
        first = f"configs/{group}/{name}.yaml" if built_in.exists() else _origin(plugins.pop(0))
        raise HarnessError(f"{group.rstrip('s')} '{name}' is defined twice: by {first} and by "
                           f"{_origin(plugins[0])}; rename the entry point in that package.")
    if plugins:
        return _plugin_file(plugins[0])
    if not built_in.exists():
        known = config_names(group)
        raise HarnessError(f"unknown {group.rstrip('s')} '{name}'.{did_you_mean(name, known, 0.5)} "
                           f"Known: {', '.join(known)}.")
    return built_in


def load_group(group: str, name: str) -> dict:
    """The config `name` of `group` (config_path), with a "did you mean" error for unknown names."""
    path = config_path(group, name)
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise HarnessError(f"{path} holds a {type(raw).__name__}, not a mapping of settings; fix the file.")
    return raw


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """["train.max_epochs=5", "lr=1e-3"] -> {"train.max_epochs": 5, "lr": 0.001}; YAML values."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HarnessError(f"override '{item}' is not key=value; write e.g. train.max_epochs=5.")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as err:  # the parser's message spans lines: keep its first, the problem
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise HarnessError(f"override '{item}': the value is not valid YAML ({problem}); close its "
                               "brackets or quote it, e.g. grid.reg_weight=[0.1,1.0] or x='a: b'.") from None
    return out


def split_overrides(overrides: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, dict]:
    """{"train.seed": 1, "lr": 2} -> {"train": {"seed": 1}, "": {"lr": 2}} for the given prefixes."""
    groups: dict[str, dict] = {p: {} for p in prefixes}
    groups[""] = {}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot and head in prefixes:
            groups[head][rest] = value
        else:
            groups[""][key] = value
    return groups


# What a setting accepts beyond its default's type: a tuple of values, or a function returning
# None for a good value and otherwise what the setting accepts. Every owner of settings (a model's
# `rules` beside its `defaults`, an extractor's `rules`, a dataclass field's metadata "rule")
# declares them with these, once, beside the default; check_value applies them with the types.
Rule = tuple | Callable[[Any], str | None]
# A rule across settings: (the settings it reads, a function of their values in that order
# returning None when they fit together, else what they must satisfy), checked after each
# setting's own rule (so it sees valid values only).
Relation = tuple[tuple[str, ...], Callable[..., str | None]]

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}


def _numeric(fits: Callable[[Any], bool], accepts: str) -> Rule:
    def rule(value):
        return None if fits(value) else accepts

    rule.accepts = accepts  # what check_value names when a number is not finite
    return rule


def at_least(low: int) -> Rule:
    return _numeric(lambda value: value >= low, f"a value of at least {low}")


def above(low: float) -> Rule:
    return _numeric(lambda value: value > low, f"a value greater than {low}")


def interval(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Rule:
    """low <= value <= high, each end open when said: interval(0, 1, high_open=True) is [0, 1)."""
    def fits(value):
        return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)

    return _numeric(fits, f"a value in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}")


# The ranges most settings share.
SIZE = at_least(1)  # widths, counts, lengths, batch sizes
NON_NEGATIVE = at_least(0)  # weights of a loss term or a penalty, seeds, "0 = default" thread counts
POSITIVE = above(0)  # learning rates, temperatures, clipping norms
DROPOUT = interval(0, 1, high_open=True)  # a dropout of 1 drops everything


def positive_int(text: str) -> int:
    """argparse type of a count given as a flag (--workers): argparse refuses a bad one while it
    reads the command line, before any work starts."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; give a whole number of at least 1")
    return value


def device_rule(value: str) -> str | None:
    """auto | cpu | cuda | cuda:N, and cuda only where this torch has CUDA."""
    accepts = "auto, cpu, cuda or cuda:N"
    if value in ("auto", "cpu"):
        return None
    if not re.fullmatch(r"cuda(:\d+)?", value):
        return accepts
    import torch

    if not torch.cuda.is_available():
        return "auto or cpu (this torch build sees no CUDA device)"
    return None


def check_value(owner: str, key: str, value: Any, default: Any, rule: Rule | None = None) -> Any:
    """`value` of setting `key`, checked against its default's type and `rule`; ints given for a
    number become floats (and "1e-3", which YAML reads as a string). Bools are not integers."""
    kind = type(default)
    if kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    fits = default is None or (isinstance(value, kind) and (kind is bool or not isinstance(value, bool)))
    accepts = None if fits else f"{_TYPE_WORDS.get(kind, kind.__name__)} (default {default!r})"
    problem = "is not accepted"
    if accepts is None and kind is float and not math.isfinite(value):  # nan and inf train garbage
        accepts = "a finite number" + (f" ({rule.accepts})" if hasattr(rule, "accepts") else "")
        problem = "is not finite, so the training loss would not be either (nothing ran)"
    if accepts is None and rule is not None:
        accepts = rule(value) if callable(rule) else (
            None if value in rule else "one of " + ", ".join(map(str, rule)))
    if accepts:
        raise HarnessError(f"{owner}: {key}={value!r} {problem}; {key} takes {accepts}.")
    return value


def check_settings(owner: str, defaults: dict, values: dict, rules: dict[str, Rule] | None = None) -> dict:
    """`values` checked before anything runs: every key known (with a "did you mean"), every
    value of its default's type and allowed by `rules`."""
    for key in values:
        if key not in defaults:
            raise HarnessError(f"{owner} has no setting '{key}'.{did_you_mean(key, defaults)} "
                               f"Settings: {', '.join(sorted(defaults))}.")
    return {k: check_value(owner, k, v, defaults[k], (rules or {}).get(k)) for k, v in values.items()}


def check_relations(owner: str, settings: dict, relations: list[Relation] | tuple = ()) -> None:
    """Settings that are each valid but do not fit together (n_heads=3 with hidden=64)."""
    for keys, relation in relations:
        if all(key in settings for key in keys):
            accepts = relation(*(settings[key] for key in keys))
            if accepts:
                given = [f"{key}={settings[key]!r}" for key in keys]
                given = ", ".join(given[:-1]) + " with " + given[-1]
                raise HarnessError(f"{owner}: {given} is not accepted; {accepts}.")


def build(cls, values: dict, where: str):
    """Instantiate dataclass `cls` from checked `values`; a field's rule is its metadata "rule"."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = {name: None if f.default is dataclasses.MISSING else f.default for name, f in fields.items()}
    rules = {name: f.metadata["rule"] for name, f in fields.items() if "rule" in f.metadata}
    return cls(**check_settings(where, defaults, values, rules))


def load_profile(name: str | None = None) -> dict:
    name = profile_name(name)
    return load_group("profiles", name) | {"name": name}


def build_settings(owner: str, defaults: dict, values: dict, rules: dict[str, Rule] | None = None,
                   relations: list[Relation] | tuple = ()) -> dict:
    """`defaults` updated by checked `values` (see check_settings), then checked together."""
    settings = {**defaults, **check_settings(owner, defaults, values, rules)}
    check_relations(owner, settings, relations)
    return settings
