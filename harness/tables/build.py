"""Build a plan: run every job that is not finished (each a grid picked on validation), then turn
the winners' test numbers into the tidy cells table (docs/tables.md has its columns).

Everything is cached by content (data sets, feature sets, adapters, RAT teachers, run keys), so
a second build only re-reads the store, and a killed build resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from harness.config import REPO_ROOT, results_dir
from harness.errors import HarnessError
from harness.store import ResultStore
from harness.tables.plan import METRIC_COLUMNS, Job, Plan

PAPER_DIR = REPO_ROOT.parent / "shared" / "paper"
JOIN_KEYS = ["model", "extractor", "variant", "dataset", "group", "metric"]


@dataclass
class Built:
    cells: pd.DataFrame
    failures: dict[Job, str] = field(default_factory=dict)
    seconds: float = 0.0


@contextlib.contextmanager
def _environ(name: str, value: str):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@dataclass
class Extraction:
    """What a worker needs to build one data set's inputs ahead of the runs (picklable)."""

    jobs: list[Job]
    profile: str | None
    log: str
    artifacts: str


def build_inputs(task: Extraction) -> int:
    """Worker entry point: prepare the data set, extract the feature sets (SDA: train the adapters)
    of its jobs, in order. A failure is left for the caller, which prepares every job again and
    reports it there; returns how many jobs were prepared."""
    from harness.grid import prepare_grid

    os.environ["HARNESS_ARTIFACTS"] = task.artifacts
    done = 0
    with open(task.log, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        for job in task.jobs:
            with contextlib.suppress(Exception):
                prepare_grid(job.model, job.dataset, job.extractor, task.profile, dict(job.overrides))
                done += 1
    return done


@dataclass
class Logged:
    """One run whose output (a RAT teacher's epoch bars, say) goes to the plan's log (picklable)."""

    job: object  # harness.executors.Job
    log: str


def run_logged(task: Logged) -> str:
    """Worker entry point: one run with its output appended to the log."""
    from harness.executors import run_job

    with open(task.log, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return run_job(task.job)


def _reason(err: BaseException) -> str:
    return str(err) if isinstance(err, HarnessError) else f"{type(err).__name__}: {err}"


def run_jobs(plan: Plan, jobs: list[Job], profile: str | None, executor: str = "local", workers: int = 1,
             store: ResultStore | None = None, log=None) -> tuple[dict[Job, str], dict[Job, str]]:
    """Run every job's grid; returns ({job: winner run key}, {job: why it failed}).

    First the inputs are built and cached: data sets, feature sets, adapters (with several workers
    and data sets, one worker per data set side by side); each grid is then prepared here from the
    caches, one after the other; then every unfinished point of every grid runs in one batch on the
    executor, so `workers` processes stay busy across cells. A job's line is printed as soon as
    its last point ends. A failing job does not stop the others; its traceback goes to `log`.
    """
    from harness.executors import make_jobs, run_jobs as execute_all
    from harness.grid import pick, prepare_grid

    store = store or ResultStore()
    out, err = sys.stdout, sys.stderr  # the terminal: job output below goes to the log
    winners, failures, grids = {}, {}, {}

    def fail(job: Job, error: BaseException) -> None:
        failures[job] = _reason(error)
        if log:
            log.write(f"\n--- {job.label}\n{''.join(traceback.format_exception(error))}")

    with contextlib.ExitStack() as quiet:
        if log:
            quiet.enter_context(contextlib.redirect_stdout(log))
            quiet.enter_context(contextlib.redirect_stderr(log))
            quiet.enter_context(_environ("TQDM_DISABLE", "1"))  # worker processes' bars too (RAT teachers)
        datasets = list(dict.fromkeys(job.dataset for job in jobs))
        if workers > 1 and len(datasets) > 1 and log:  # data sets build their inputs side by side
            from harness.config import artifacts_dir

            tasks = [Extraction([j for j in jobs if j.dataset == d], profile, log.name, str(artifacts_dir()))
                     for d in datasets]
            inputs = tqdm(total=len(tasks), desc=f"{plan.name}: data, features", unit="data set", file=err,
                          disable=False)
            execute_all(tasks, executor, workers, lambda *_: inputs.update(), build_inputs)
            inputs.close()
        for job in tqdm(jobs, desc=f"{plan.name}: grids", unit="cell", file=err, disable=False):
            overrides = {**dict(job.overrides), "train.progress": False}
            try:
                grids[job] = prepare_grid(job.model, job.dataset, job.extractor, profile, overrides)
            except Exception as error:  # one broken cell must not stop the table: report it, go on
                fail(job, error)

        batch, owner = [], []
        for job, grid in grids.items():
            todo = make_jobs(grid.todo(store), store, grid.data, grid.features, workers)
            batch += todo
            owner += [job] * len(todo)
        remaining = {job: owner.count(job) for job in grids}
        bar = tqdm(total=len(jobs), desc=f"{plan.name}: cells", unit="cell", file=err, disable=False,
                   dynamic_ncols=True, initial=len(failures))
        began = time.perf_counter()

        def finish(job: Job) -> None:
            if job not in failures:
                try:
                    row = pick(grids[job], store)["row"]
                    winners[job] = row["run_key"]
                    line = (f"HR@10 {row.get('test_sampled_overall_hit@10', np.nan):.4f} "
                            f"NDCG@10 {row.get('test_sampled_overall_ndcg@10', np.nan):.4f} "
                            f"(valid {row['valid_value']:.4f}, {row['points']} point(s))")
                except Exception as error:
                    fail(job, error)
            if job in failures:
                line = f"FAILED: {failures[job]}"
            elapsed = time.perf_counter() - began
            bar.write(f"[{bar.n + 1}/{len(jobs)}] {job.label}: {line} [at {elapsed:.0f} s]", file=out)
            bar.update()

        def on_done(index: int, run_key: str | None, error: BaseException | None) -> None:
            job = owner[index]
            if error is not None and job not in failures:
                fail(job, error)
            remaining[job] -= 1
            if remaining[job] == 0:
                finish(job)

        for job in [j for j in grids if remaining[j] == 0]:  # everything already finished
            finish(job)
        if log:
            execute_all([Logged(job, log.name) for job in batch], executor, workers, on_done, run_logged)
        else:
            execute_all(batch, executor, workers, on_done)
        bar.close()
    return winners, failures


class PerUser:
    """Per-user test values (sampled protocol) of finished runs, read once per run."""

    def __init__(self, store: ResultStore):
        self.store, self._frames = store, {}

    def __call__(self, run_key: str, group: str, metric: str) -> np.ndarray:
        if run_key not in self._frames:
            users = self.store.per_user(run_key)
            self._frames[run_key] = users[(users["split"] == "test") & (users["protocol"] == "sampled")]
        users = self._frames[run_key]
        if group == "tail":
            users = users[users["tail"].astype(bool)]
        return users.sort_values("user")[METRIC_COLUMNS[metric]].to_numpy(dtype=float)


def collect_cells(plan: Plan, profile: str, jobs: list[Job], winners: dict[Job, str],
                  store: ResultStore, per_user: PerUser) -> pd.DataFrame:
    """One row per (job, group, metric): the winner's value, n, bootstrap CI and provenance;
    NaN values for failed jobs."""
    from harness.significance import bootstrap_ci

    rows = []
    for job in jobs:
        key = winners.get(job, "")
        ident = store.manifest(key)["identity"] if key else {}
        for group in plan.groups:
            for metric in plan.metrics:
                values = per_user(key, group, metric) if key else np.array([])
                low, high = bootstrap_ci(values)
                rows.append({"table": plan.name, "profile": profile, "model": job.model,
                             "extractor": job.extractor, "variant": job.variant, "dataset": job.dataset,
                             "group": group, "metric": metric,
                             "value": float(values.mean()) if len(values) else np.nan, "n": len(values),
                             "ci_low": low, "ci_high": high, "ours": job.extractor == plan.ours,
                             "run_key": key, "data_hash": ident.get("data_hash", ""),
                             "feature_key": ident.get("feature_key", "")})
    return pd.DataFrame(rows)


def paper_values(plan: Plan) -> pd.DataFrame | None:
    """The paper's numbers for this plan, long (JOIN_KEYS present in the file + value); wide files
    (`overall_HR@10`, `tail_delta_percent`, ...) are melted. None when the plan names none."""
    if not plan.paper:
        return None
    path = PAPER_DIR / plan.paper
    if not path.exists():
        raise HarnessError(f"{path} is missing: the paper's numbers live in ../shared/paper beside the "
                           f"checkout; lay it there or drop `paper:` from configs/tables/{plan.name}.yaml.")
    paper = pd.read_csv(path)
    if "value" not in paper.columns:
        ids = [c for c in paper.columns if c in JOIN_KEYS]
        paper = paper.melt(id_vars=ids, value_vars=[c for c in paper.columns if c not in ids],
                           var_name="column", value_name="value")
        paper[["group", "metric"]] = paper["column"].str.split("_", n=1, expand=True)
        paper["metric"] = paper["metric"].replace({"delta_percent": "Δ%"})
        paper = paper.drop(columns="column")
    return paper[[c for c in JOIN_KEYS if c in paper.columns] + ["value"]].rename(columns={"value": "paper_value"})


def join_paper(cells: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    if paper is None:
        return cells.assign(paper_value=np.nan, diff=np.nan)
    keys = [c for c in JOIN_KEYS if c in paper.columns]
    out = cells.merge(paper, on=keys, how="left", validate="many_to_one")
    return out.assign(diff=out["value"] - out["paper_value"])


def ablation_deltas(cells: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Table 3's delta: per variant and group, the mean relative change (%) of its metrics against
    the `reference` variant, as extra cells with metric "Δ%"."""
    rows = []
    for (variant, group), part in cells.groupby(["variant", "group"], sort=False):
        ref = cells[(cells["variant"] == reference) & (cells["group"] == group)].set_index("metric")["value"]
        mine = part.set_index("metric")["value"]
        change = ((mine - ref[mine.index]) / ref[mine.index] * 100).mean()
        rows.append(part.iloc[0].to_dict() | {"metric": "Δ%", "value": change, "ci_low": np.nan,
                                               "ci_high": np.nan, "p_ttest": np.nan, "p_wilcoxon": np.nan,
                                               "p_holm": np.nan, "marked": False, "baseline": ""})
    return pd.concat([cells, pd.DataFrame(rows)], ignore_index=True)


def build(plan: Plan, profile: str, datasets: list[str] | None = None, executor: str = "local",
          workers: int = 1, store: ResultStore | None = None) -> Built:
    """Run what the plan needs and return its cells, marked and joined with the paper."""
    from harness.significance import mark_cells

    store = store or ResultStore()
    jobs = plan.jobs(datasets)
    began = time.perf_counter()
    log_path = results_dir() / "tables" / f"{plan.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        winners, failures = run_jobs(plan, jobs, profile, executor, workers, store, log)
    per_user = PerUser(store)
    cells = collect_cells(plan, profile, jobs, winners, store, per_user)
    cells = mark_cells(cells, plan.ours, per_user)
    if plan.delta_against:
        cells = ablation_deltas(cells, plan.delta_against)
    cells = join_paper(cells, paper_values(plan))
    return Built(cells, failures, time.perf_counter() - began)
