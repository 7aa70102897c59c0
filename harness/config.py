"""One config system: dataclasses with defaults, YAML files under configs/, key=value overrides."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError

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
        from harness.registry import Registry

        Registry(group.rstrip("s"), {n: "" for n in config_names(group)}).check(name)
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


def build(cls, values: dict, where: str):
    """Instantiate dataclass `cls` from `values`, refusing keys it does not have."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], fields, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise HarnessError(
            f"{where} has no setting '{unknown[0]}'.{hint} Settings: {', '.join(sorted(fields))}."
        )
    return cls(**values)


def load_profile(name: str | None = None) -> dict:
    name = profile_name(name)
    return load_group("profiles", name) | {"name": name}


def build_settings(owner: str, defaults: dict, values: dict) -> dict:
    """`defaults` updated by `values`, refusing keys `defaults` does not have."""
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], defaults, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise HarnessError(f"'{owner}' takes no setting '{unknown[0]}'.{hint} "
                           f"It takes: {', '.join(sorted(defaults))}.")
    return {**defaults, **values}
