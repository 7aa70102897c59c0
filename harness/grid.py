"""Grid search: expand a model's `grid:` (configs/models/<model>.yaml, `grid.key=[...]` overrides on
the CLI) into run specs, run the unfinished ones, pick the winner on validation only, and write
one summary row per grid to results/grid_summary.csv. A grid is identified by everything that
can change its rows (`grid_key`): model, extractor and its settings, data set, profile, data
hash, feature key, axes and the settings held fixed; running it again replaces its row, and
another grid (other axes, other extractor settings) gets a row of its own.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.runner import RunSpec, feature_key_of, load_features_for, model_config
from protocol.config import load_profile, split_overrides
from protocol.errors import HarnessError, did_you_mean
from protocol.fileio import atomic_path, stable_key
from protocol.store import ResultStore

SUMMARY = "grid_summary.csv"


def grid_axes(model: str, extractor: str, overrides: dict, profile: str | None = None) -> tuple[dict[str, list], dict]:
    """(axes, fixed overrides): the model's grid (the profile's `grid:` entry for the model when it
    has one, else the model YAML's) updated by `grid.*` overrides, checked against the model's
    settings; settings that only matter with features are dropped when it gets none."""
    from recommenders import MODELS

    model_cls = MODELS.get(model)
    groups = split_overrides(overrides, ("grid",))
    profile_grids = load_profile(profile).get("grid") or {}
    base = profile_grids[model] if model in profile_grids else model_config(model).get("grid")
    axes = {**(base or {}), **groups["grid"]}
    settings = model_cls.resolve_params({})
    for key in axes:
        if key not in settings:
            raise HarnessError(f"grid key '{key}' is not a setting of model '{model}'.{did_you_mean(key, settings)} "
                               f"It takes: {', '.join(sorted(settings))}.")
    if not model_cls.wants_features(extractor):
        axes = {k: v for k, v in axes.items() if k not in model_cls.feature_params}
    axes = {k: v if isinstance(v, list) else [v] for k, v in axes.items()}
    for key, values in axes.items():
        if not values:  # the grid would have no point at all
            raise HarnessError(f"grid.{key}=[] has no value; give at least one, e.g. grid.{key}=[{settings[key]}].")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:  # the same run twice: a slip, not a wish for more points
            raise HarnessError(f"grid.{key}={values} lists {repeated[0]} more than once; list each value once.")
    return axes, groups[""]


def expand(model: str, dataset: str, extractor: str, profile: str | None, overrides: dict) -> tuple[list[RunSpec], dict]:
    """Every point of the grid as a resolved spec (all checked before anything runs), and the axes."""
    axes, fixed = grid_axes(model, extractor, overrides, profile)
    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    return [RunSpec.resolve(model, dataset, extractor, profile, {**fixed, **point}) for point in points], axes


@dataclass
class Grid:
    """A grid's resolved points with their run keys, on one data set with one feature set."""

    specs: list[RunSpec]
    keys: list[str]
    axes: dict
    data: object
    features: object

    def todo(self, store: ResultStore) -> list[RunSpec]:
        return [spec for spec, key in zip(self.specs, self.keys) if not store.is_finished(key)]


def prepare_grid(model: str, dataset: str, extractor: str = "base", profile: str | None = None,
                 overrides: dict | None = None, data=None, features=None) -> Grid:
    """Expand and check the grid, load its data set and feature set (extracted on first use)."""
    from harness.runner import check_known
    from protocol.data.prepare import load_dataset
    from recommenders import MODELS

    check_known(model, extractor)
    specs, axes = expand(model, dataset, extractor, profile, overrides or {})
    data = data or load_dataset(dataset, specs[0].profile)
    if features is None:
        features = load_features_for(specs[0], data, MODELS.get(model))
    keys = [spec.key(data.content_hash, feature_key_of(features)) for spec in specs]
    return Grid(specs, keys, axes, data, features)


def pick(grid: Grid, store: ResultStore) -> dict:
    """The winner on validation (first of equals, in grid order): the points table, its run key,
    its summary row and the summary file."""
    points = pd.DataFrame([{**{k: spec.params[k] for k in grid.axes}, "run_key": key,
                            "valid": valid_value(store, key, spec.train["valid_metric"])}
                           for spec, key in zip(grid.specs, grid.keys)])
    best = best_point(points["valid"].tolist(), grid.specs[0].train["valid_metric"])
    row = summary_row(store, grid.specs[best], grid.keys[best], grid.axes, len(grid.specs))
    row = {"grid_key": grid_key(grid.specs[0], grid.axes, grid.data.content_hash, feature_key_of(grid.features)),
           "axes": json.dumps(grid.axes, sort_keys=True)} | row
    return {"points": points, "winner": grid.keys[best], "row": row, "summary": write_summary(store, row)}


def best_point(values: list[float], metric: str) -> int:
    """The index of the highest validation value, first of equals in grid order; a NaN never wins
    (numpy's argmax would pick the first NaN) and a grid of NaNs has no winner."""
    finite = [i for i, v in enumerate(values) if not math.isnan(v)]
    if not finite:
        raise HarnessError(f"every one of the grid's {len(values)} points has a NaN validation {metric}, so "
                           "none can win; look at their runs (harness results) and fix what made them NaN.")
    return max(finite, key=lambda i: values[i])  # max keeps the first of equals


def run_grid(model: str, dataset: str, extractor: str = "base", profile: str | None = None,
             overrides: dict | None = None, executor: str = "local", workers: int = 1,
             store: ResultStore | None = None, data=None, features=None, address: str | None = None) -> dict:
    """Run the grid (finished points are skipped) and pick its winner (see `pick`); `address`: the
    Ray cluster of `executor="ray"`."""
    from harness.executors import check_executor, make_jobs, run_jobs

    check_executor(executor, workers)  # before the data set and features are prepared
    grid = prepare_grid(model, dataset, extractor, profile, overrides, data, features)
    store = store or ResultStore()
    todo = grid.todo(store)
    print(f"grid {model} / {extractor} / {dataset}: {len(grid.specs)} points, "
          f"{len(grid.specs) - len(todo)} finished, running {len(todo)} ({executor}, {workers} worker(s))")
    run_jobs(make_jobs(todo, store, grid.data, grid.features, workers), executor, workers, address=address)
    return pick(grid, store)


def grid_key(spec: RunSpec, axes: dict, data_hash: str, feature_key: str) -> str:
    """What identifies a grid: any point's spec with the axes' values replaced by the axes."""
    fixed = {k: v for k, v in spec.params.items() if k not in axes}
    return stable_key({"model": spec.model, "extractor": spec.extractor, "dataset": spec.dataset,
                       "profile": spec.profile, "extractor_settings": spec.extractor_settings,
                       "data": data_hash, "features": feature_key, "axes": axes, "fixed": fixed,
                       "train": spec.key_train()})


def _split_rows(store: ResultStore, run_key: str, split: str) -> pd.DataFrame:
    metrics = store.metrics(run_key)
    return metrics[metrics["split"] == split]


def valid_value(store: ResultStore, run_key: str, metric: str) -> float:
    """The selection metric: sampled validation, overall group (as the trainer selects epochs)."""
    name, k = metric.split("@")
    rows = _split_rows(store, run_key, "valid")
    rows = rows[(rows["protocol"] == "sampled") & (rows["group"] == "overall")
                & (rows["metric"] == name) & (rows["k"] == int(k))]
    return float(rows["value"].iloc[0])


def summary_row(store: ResultStore, spec: RunSpec, run_key: str, axes: dict, n_points: int) -> dict:
    ident = store.manifest(run_key)["identity"]
    row = {"model": spec.model, "extractor": spec.extractor, "dataset": spec.dataset, "profile": spec.profile,
           "data_hash": ident["data_hash"], "feature_key": ident["feature_key"], "points": n_points,
           "run_key": run_key, "chosen": json.dumps({k: spec.params[k] for k in axes}, sort_keys=True),
           "params": ident["params"], "valid_metric": spec.train["valid_metric"],
           "valid_value": valid_value(store, run_key, spec.train["valid_metric"]),
           "best_epoch": ident["best_epoch"], "epochs": ident["epochs"]}
    for r in _split_rows(store, run_key, "test").itertuples():
        row[f"test_{r.protocol}_{r.group}_{r.metric}@{r.k}"] = r.value
        row[f"n_test_{r.group}"] = r.n
    return row


def write_summary(store: ResultStore, row: dict) -> Path:
    """Replace this grid's row (same `grid_key`) in results/grid_summary.csv, keep the others."""
    path = store.root / SUMMARY
    with store.locked():  # concurrent grids write one at a time
        table = pd.DataFrame([row])
        if path.exists():
            old = pd.read_csv(path)
            # A summary written before grids had keys holds no grid_key: its rows are kept as they are.
            others = old[old["grid_key"] != row["grid_key"]] if "grid_key" in old else old
            if len(others):
                table = pd.concat([others, table], ignore_index=True)
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    return path
