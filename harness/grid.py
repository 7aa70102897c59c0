"""Grid search: expand a model's `grid:` (configs/models/<model>.yaml, `grid.key=[...]` overrides on
the CLI) into run specs, run the unfinished ones, pick the winner on validation only, and write
one summary row per (model, extractor, data set, profile) to results/grid_summary.csv.
"""
from __future__ import annotations

import difflib
import itertools
import json
from pathlib import Path

import pandas as pd

from harness.config import split_overrides
from harness.errors import HarnessError
from harness.fileio import atomic_path
from harness.runner import RunSpec, feature_key_of, load_features_for, model_config
from harness.store import ResultStore

SUMMARY = "grid_summary.csv"
SUMMARY_KEY = ["model", "extractor", "dataset", "profile"]


def grid_axes(model: str, extractor: str, overrides: dict) -> tuple[dict[str, list], dict]:
    """(axes, fixed overrides): the YAML grid updated by `grid.*` overrides, checked against the
    model's settings; settings that only matter with features are dropped when it gets none."""
    from recommenders import MODELS

    model_cls = MODELS.get(model)
    groups = split_overrides(overrides, ("grid",))
    axes = {**(model_config(model).get("grid") or {}), **groups["grid"]}
    settings = model_cls.resolve_params({})
    for key in axes:
        if key not in settings:
            close = difflib.get_close_matches(key, settings, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise HarnessError(f"grid key '{key}' is not a setting of model '{model}'.{hint} "
                               f"It takes: {', '.join(sorted(settings))}.")
    if not model_cls.wants_features(extractor):
        axes = {k: v for k, v in axes.items() if k not in model_cls.feature_params}
    return {k: v if isinstance(v, list) else [v] for k, v in axes.items()}, groups[""]


def expand(model: str, dataset: str, extractor: str, profile: str | None, overrides: dict) -> tuple[list[RunSpec], dict]:
    """Every point of the grid as a resolved spec (all checked before anything runs), and the axes."""
    axes, fixed = grid_axes(model, extractor, overrides)
    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    return [RunSpec.resolve(model, dataset, extractor, profile, {**fixed, **point}) for point in points], axes


def run_grid(model: str, dataset: str, extractor: str = "base", profile: str | None = None,
             overrides: dict | None = None, executor: str = "local", workers: int = 1,
             store: ResultStore | None = None, data=None, features=None) -> dict:
    """Run the grid (finished points are skipped); returns the points table, the winner's run key,
    its summary row and the summary file."""
    from harness.data.prepare import load_dataset
    from harness.executors import make_jobs, run_jobs
    from harness.runner import check_known
    from recommenders import MODELS

    check_known(model, extractor)
    specs, axes = expand(model, dataset, extractor, profile, overrides or {})
    store = store or ResultStore()
    data = data or load_dataset(dataset, specs[0].profile)
    if features is None:
        features = load_features_for(specs[0], data, MODELS.get(model))
    keys = [spec.key(data.content_hash, feature_key_of(features)) for spec in specs]
    todo = [spec for spec, key in zip(specs, keys) if not store.is_finished(key)]
    print(f"grid {model} / {extractor} / {dataset}: {len(specs)} points, "
          f"{len(specs) - len(todo)} finished, running {len(todo)} ({executor}, {workers} worker(s))")
    run_jobs(make_jobs(todo, store, data, features, workers), executor, workers)

    points = pd.DataFrame([{**{k: spec.params[k] for k in axes}, "run_key": key,
                            "valid": valid_value(store, key, spec.train["valid_metric"])}
                           for spec, key in zip(specs, keys)])
    best = int(points["valid"].to_numpy().argmax())  # first of equals, in grid order
    row = summary_row(store, specs[best], keys[best], axes, len(specs))
    return {"points": points, "winner": keys[best], "row": row, "summary": write_summary(store, row)}


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
    """Replace this (model, extractor, data set, profile)'s row in results/grid_summary.csv."""
    path = store.root / SUMMARY
    with store.locked():  # concurrent grids write one at a time
        table = pd.DataFrame([row])
        if path.exists():
            old = pd.read_csv(path)
            same = (old[SUMMARY_KEY].astype(str) == pd.Series({k: str(row[k]) for k in SUMMARY_KEY})).all(axis=1)
            if (~same).any():
                table = pd.concat([old[~same], table], ignore_index=True)
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    return path
