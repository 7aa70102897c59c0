"""The Python API beside the CLI, for notebooks: the same functions, keys and result store.

    from harness import api
    out = api.run(model="sasrec", extractor="clip", dataset="toys", hidden=64, **{"train.max_epochs": 5})
    out.run_key, out.headline, out.metrics          # the key, HR@10/NDCG@10 table, every metric row
    api.grid(model=MyModel, extractor="base", dataset="toys").points
    api.table("examples/plan.yaml").cells
    api.results(model="sasrec", dataset="toys")     # results/metrics.csv as a DataFrame

Settings are the CLI's key=value overrides as keyword arguments: plain names for model settings
(`hidden=64`), dotted ones through a dict (`**{"train.max_epochs": 5, "extractor.pca_dim": 64}`).
A string value is read as the CLI reads it (YAML: `"5"` is 5), any other value is taken as it is.
`model` and `extractor` are names (`"sasrec"`, `"pkg.mod:Class"`, `"path/file.py:Class"`, an entry
point's name) or classes; a class is named `module:Class` (or `file.py:Class` for a class loaded from
a file), so `api.run(model=MyModel, ...)` and `python -m harness run --model mypkg.models:MyModel ...`
are the same run with the same key. Errors are protocol.errors.HarnessError, one line naming the fix.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from protocol.errors import HarnessError, did_you_mean

__all__ = ["run", "grid", "table", "results", "run_metrics", "per_user", "manifest", "component_name",
           "RunResult", "GridResult", "TableResult"]


@dataclass
class RunResult:
    run_key: str
    metrics: pd.DataFrame  # the run's long rows (results/runs/<key>/metrics.csv)
    headline: pd.DataFrame  # overall and tail HR@10 / NDCG@10, valid and test, with n
    manifest: dict = field(repr=False, default_factory=dict)
    dir: Path | None = None
    skipped: bool = False  # True: the key was finished already and nothing ran


@dataclass
class GridResult:
    winner: str  # the run key picked on validation
    points: pd.DataFrame  # one row per grid point: its settings, run key, validation value
    summary: pd.DataFrame  # the grid's row of results/grid_summary.csv (test metrics of the winner)
    path: Path | None = None


@dataclass
class TableResult:
    cells: pd.DataFrame  # the tidy cells (docs/tables.md: value, n, CI, p-values, marked, run_key ...)
    paths: list[Path]  # the written csv, md, tex (or png, pdf for a figure plan)
    failures: dict = field(default_factory=dict)  # job label -> why it failed


def component_name(obj, kind: str = "model") -> str:
    """The name the CLI would use for `obj`: a string as it is; a class as `module:Class` when its
    module can be imported again by name (worker processes do), `file.py:Class` for one loaded from a
    file; a class of `__main__` (a notebook cell, a script) is refused."""
    if isinstance(obj, str):
        return obj
    if not inspect.isclass(obj):
        raise HarnessError(f"{kind} must be a name or a class, not {type(obj).__name__}; pass e.g. "
                           f"{kind}=\"sasrec\" or {kind}=MyClass.")
    module = sys.modules.get(obj.__module__)
    if obj.__module__ == "__main__":
        raise HarnessError(f"{kind} class {obj.__qualname__} is defined in __main__ (a notebook or script), which "
                           "other processes cannot import; put it in a .py file and import it from there.")
    if module is None or getattr(module, obj.__qualname__, None) is not obj:
        raise HarnessError(f"{kind} class {obj.__qualname__} is not defined at the top level of module "
                           f"{obj.__module__}; define it at a module's top level so it can be named.")
    from protocol.registry import FILE_MODULE_PREFIX

    if obj.__module__.startswith(FILE_MODULE_PREFIX) or importlib.util.find_spec(obj.__module__) is None:
        return f"{inspect.getfile(obj)}:{obj.__qualname__}"
    return f"{obj.__module__}:{obj.__qualname__}"


def _overrides(settings: dict) -> dict:
    """Keyword settings as the CLI's parsed key=value overrides (strings read as YAML, like the CLI)."""
    from protocol.config import parse_overrides

    return {key: parse_overrides([f"{key}={value}"])[key] if isinstance(value, str) else value
            for key, value in settings.items()}


def run(model, extractor="base", dataset: str = "beauty", profile: str | None = None, force: bool = False,
        **settings) -> RunResult:
    """Train and evaluate one configuration (`harness run`); a finished key is read back, not rerun."""
    from harness.runner import RunSpec, check_known, execute, headline

    model, extractor = component_name(model, "model"), component_name(extractor, "extractor")
    check_known(model, extractor)
    spec = RunSpec.resolve(model, dataset, extractor, profile, _overrides(settings))
    out = execute(spec, force=force)
    return RunResult(out["run_key"], out["metrics"], headline(out["metrics"]), out["manifest"], out["dir"],
                     out["skipped"])


def grid(model, extractor="base", dataset: str = "beauty", profile: str | None = None,
         executor: str = "local", workers: int = 1, **settings) -> GridResult:
    """Run a model's grid and pick the winner on validation (`harness grid`); `grid.x=[...]` settings
    replace an axis (`**{"grid.hidden": [32, 64]}`)."""
    from harness.grid import run_grid

    out = run_grid(component_name(model, "model"), dataset, component_name(extractor, "extractor"), profile,
                   _overrides(settings), executor=executor, workers=workers)
    return GridResult(out["winner"], out["points"], pd.DataFrame([out["row"]]), out["summary"])


def table(plan: str | Path, datasets: list[str] | None = None, profile: str | None = None,
          executor: str = "local", workers: int = 1) -> TableResult:
    """Build a plan (`harness table`): `table1`, or a plan file's path; writes what the CLI writes."""
    from harness.commands.table import check_inputs
    from harness.tables.plan import load_plan
    from protocol.config import profile_name, results_dir

    name = str(plan)
    loaded, profile = load_plan(name), profile_name(profile)
    if loaded.kind == "stats":
        from harness.tables.datasets import statistics, write_statistics
        from harness.tables.report import provenance_line

        stats = statistics(loaded, profile)
        caption = f"{loaded.title}. {provenance_line(profile, dict(zip(stats['dataset'], stats['content_hash'])))}"
        return TableResult(stats, write_statistics(stats, loaded.output_name(profile), caption, results_dir() / "tables"))
    from harness.tables.build import build
    from harness.tables.report import with_errors, write_figure, write_table

    check_inputs(loaded, name, profile, datasets)
    built = build(loaded, profile, datasets, executor, workers)
    paths = (write_figure if loaded.figure else write_table)(loaded, built, profile)
    return TableResult(with_errors(built), paths, {job.label: why for job, why in built.failures.items()})


def results(**filters) -> pd.DataFrame:
    """Every finished run's metric rows (results/metrics.csv), filtered by column values, e.g.
    `results(model="sasrec", dataset="toys", split="test", k=10)`; empty when nothing has run."""
    from protocol.store import ResultStore

    path = ResultStore().root / "metrics.csv"
    frame = pd.read_csv(path) if path.exists() and path.stat().st_size > 1 else pd.DataFrame()
    for column, value in filters.items():
        if column not in frame.columns:
            if frame.empty:
                return frame
            raise HarnessError(f"results has no column '{column}'.{did_you_mean(column, list(frame.columns))} "
                               f"Filter by one of: {', '.join(frame.columns)}.")
        frame = frame[frame[column] == value]
    return frame.reset_index(drop=True)


def run_metrics(run_key: str) -> pd.DataFrame:
    """One finished run's metric rows (results/runs/<key>/metrics.csv, checked against its hash)."""
    from protocol.store import ResultStore

    return ResultStore().metrics(run_key)


def per_user(run_key: str) -> pd.DataFrame:
    """One finished run's per-user hits and NDCG (what `compare` and the tables' t-tests read)."""
    from protocol.store import ResultStore

    return ResultStore().per_user(run_key)


def manifest(run_key: str) -> dict:
    """One finished run's manifest: resolved settings, identity (plugins' included), versions, timings."""
    from protocol.store import ResultStore

    return ResultStore().manifest(run_key)
