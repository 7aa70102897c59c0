"""One config system: dataclasses with defaults, YAML files under configs/, key=value overrides."""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable

import yaml

from harness.errors import HarnessError, did_you_mean

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
DEFAULT_PROFILE = "mini"


def artifacts_dir() -> Path:
    """Where prepared data sets, feature sets and checkpoints live (not tracked by git)."""
    return Path(os.environ.get("HARNESS_ARTIFACTS", REPO_ROOT / "artifacts"))


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


def config_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def load_group(group: str, name: str) -> dict:
    """configs/<group>/<name>.yaml, with a "did you mean" error for unknown names."""
    path = CONFIG_DIR / group / f"{name}.yaml"
    if not path.exists():
        known = config_names(group)
        raise HarnessError(f"unknown {group.rstrip('s')} '{name}'.{did_you_mean(name, known, 0.5)} "
                           f"Known: {', '.join(known)}.")
    return load_yaml(path)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """["train.max_epochs=5", "lr=1e-3"] -> {"train.max_epochs": 5, "lr": 0.001}; YAML values."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HarnessError(f"override '{item}' is not key=value; write e.g. train.max_epochs=5.")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
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
# None for a good value and otherwise what the setting accepts.
Rule = tuple | Callable[[Any], str | None]

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}


def at_least(low: int) -> Rule:
    return lambda value: None if value >= low else f"a value of at least {low}"


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
    if accepts is None and rule is not None:
        accepts = rule(value) if callable(rule) else (
            None if value in rule else "one of " + ", ".join(map(str, rule)))
    if accepts:
        raise HarnessError(f"{owner}: {key}={value!r} is not accepted; {key} takes {accepts}.")
    return value


def check_settings(owner: str, defaults: dict, values: dict, rules: dict[str, Rule] | None = None) -> dict:
    """`values` checked before anything runs: every key known (with a "did you mean"), every
    value of its default's type and allowed by `rules`."""
    for key in values:
        if key not in defaults:
            raise HarnessError(f"{owner} has no setting '{key}'.{did_you_mean(key, defaults)} "
                               f"Settings: {', '.join(sorted(defaults))}.")
    return {k: check_value(owner, k, v, defaults[k], (rules or {}).get(k)) for k, v in values.items()}


def build(cls, values: dict, where: str):
    """Instantiate dataclass `cls` from checked `values`; a field's rule is its metadata "rule"."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = {name: None if f.default is dataclasses.MISSING else f.default for name, f in fields.items()}
    rules = {name: f.metadata["rule"] for name, f in fields.items() if "rule" in f.metadata}
    return cls(**check_settings(where, defaults, values, rules))


def load_profile(name: str | None = None) -> dict:
    name = profile_name(name)
    return load_group("profiles", name) | {"name": name}


def build_settings(owner: str, defaults: dict, values: dict, rules: dict[str, Rule] | None = None) -> dict:
    """`defaults` updated by checked `values` (see check_settings)."""
    return {**defaults, **check_settings(owner, defaults, values, rules)}
