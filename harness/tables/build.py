"""Build a plan: run every job that is not finished (each a grid picked on validation), then turn
the winners' test numbers into the tidy cells table (docs/tables.md has its columns).

Everything is cached by content (data sets, feature sets, adapters, RAT teachers, run keys), so
a second build only re-reads the store, and a killed build resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from harness.runner import table_extraction_settings
from harness.tables.plan import METRIC_COLUMNS, Job, Plan
from protocol.config import REPO_ROOT, results_dir
from protocol.errors import HarnessError
from protocol.store import ResultStore

PAPER_DIR = REPO_ROOT.parent / "shared" / "paper"
JOIN_KEYS = ["model", "extractor", "variant", "dataset", "group", "metric"]


@dataclass
class Built:
    cells: pd.DataFrame
    failures: dict[Job, str] = field(default_factory=dict)
    seconds: float = 0.0
    name: str = ""  # the outputs' file stem (Plan.output_name): profile and partial builds apart
    datasets: list[str] = field(default_factory=list)  # the data sets built (all of the plan's, or some)


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
    dataset: str = ""  # the prepared data set's folder (prepared by the driver, which has the raw files)
    raw_files: list[str] = field(default_factory=list)  # raw files the extractors read (.b image vectors)
    resources: dict = field(default_factory=dict)  # Ray task options (harness.cluster.resources)

    @property
    def label(self) -> str:
        return f"inputs of {self.jobs[0].dataset} / {', '.join(dict.fromkeys(j.extractor for j in self.jobs))}"

    def on_node(self, node) -> "Extraction":
        """On a cluster node without the driver's disk: the prepared data set and raw files fetched."""
        for path in self.raw_files:
            node.fetch(path)
        return replace(self, dataset=node.fetch(self.dataset), artifacts=node.place(self.artifacts),
                       log=node.place(self.log))


def build_inputs(task: Extraction) -> int:
    """Worker entry point: prepare the data set, extract the feature sets (SDA: train the adapters)
    of its jobs, in order. A failure is left for the caller, which prepares every job again and
    reports it there; returns how many jobs were prepared."""
    from harness.grid import prepare_grid

    os.environ["HARNESS_ARTIFACTS"] = task.artifacts
    Path(task.log).parent.mkdir(parents=True, exist_ok=True)
    done = 0
    with open(task.log, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        for job in task.jobs:
            with contextlib.suppress(Exception):
                prepare_grid(job.model, task.dataset or job.dataset, job.extractor, task.profile, dict(job.overrides))
                done += 1
    return done


def inputs_task(plan: Plan, jobs: list[Job], profile: str | None, log: str) -> Extraction:
    """The inputs job of `jobs` (one data set, one feature set): the data set prepared here first
    (the driver has the raw files), the raw files its extractor reads, and the resources it asks
    of a cluster (an SDA adapter trained on N processes gets N GPUs of one node)."""
    from extractors.store import extractor_settings
    from harness.cluster import resources
    from protocol.config import artifacts_dir
    from protocol.data.prepare import load_dataset
    from protocol.data.spec import dataset_spec

    dataset = load_dataset(jobs[0].dataset, profile)
    raw = []
    with contextlib.suppress(HarnessError):  # a folder data set has no config naming raw files
        spec = dataset_spec(jobs[0].dataset, profile)
        raw = [str(spec.resolve(spec.image_features))] if spec.image_features else []
    processes = max(int(extractor_settings(j.extractor, profile, table_extraction_settings(j.overrides),
                                           j.dataset).get("adapt_processes", 1)) for j in jobs)
    return Extraction(jobs, profile, log, str(artifacts_dir()), str(dataset.path), raw,
                      resources("inputs", profile, plan.resources, gpus_at_least=processes if processes > 1 else 0))


@dataclass
class Logged:
    """One run whose output (a RAT teacher's epoch bars, say) goes to the plan's log (picklable)."""

    job: object  # harness.executors.Job
    log: str

    @property
    def label(self) -> str:
        return self.job.label

    @property
    def resources(self) -> dict:
        return self.job.resources

    def on_node(self, node) -> "Logged":
        return Logged(self.job.on_node(node), node.place(self.log))


def run_logged(task: Logged) -> str:
    """Worker entry point: one run with its output appended to the log."""
    from harness.executors import run_job

    Path(task.log).parent.mkdir(parents=True, exist_ok=True)
    with open(task.log, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return run_job(task.job)


def _reason(err: BaseException) -> str:
    return str(err) if isinstance(err, HarnessError) else f"{type(err).__name__}: {err}"


def run_jobs(plan: Plan, jobs: list[Job], profile: str | None, executor: str = "local", workers: int = 1,
             store: ResultStore | None = None, log=None,
             address: str | None = None) -> tuple[dict[Job, str], dict[Job, str]]:
    """Run every job's grid; returns ({job: winner run key}, {job: why it failed}).

    First the inputs are built and cached: data sets, feature sets, adapters (with several workers,
    one job per feature set side by side; on Ray always, each job asking for the profile's `inputs`
    resources); each grid is then prepared here from the
    caches, one after the other; then every unfinished point of every grid runs in one batch on the
    executor, so `workers` processes stay busy across cells. A job's line is printed as soon as
    its last point ends. A failing job does not stop the others; its traceback goes to `log`.
    """
    from harness.executors import make_jobs, run_jobs as execute_all, teacher_jobs, train_teacher
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
        # One inputs job per feature set (data set x extractor x its settings), side by side; on Ray
        # always as jobs of their own, on the nodes with the resources they ask for (GPUs).
        groups = {}
        for job in jobs:
            settings = json.dumps(table_extraction_settings(job.overrides), sort_keys=True, default=str)
            groups.setdefault((job.dataset, job.extractor, settings), []).append(job)
        if log and (executor == "ray" or (workers > 1 and len(groups) > 1)):
            tasks = []
            for (dataset, extractor, _), members in groups.items():
                try:
                    tasks.append(inputs_task(plan, members, profile, log.name))
                except Exception as error:  # reported with its cells below, where each is prepared again
                    log.write(f"\n--- inputs of {dataset} / {extractor}\n{''.join(traceback.format_exception(error))}")
            inputs = tqdm(total=len(tasks), desc=f"{plan.name}: data, features", unit="feature set", file=err,
                          disable=False)
            execute_all(tasks, executor, workers, lambda *_: inputs.update(), build_inputs, address)
            inputs.close()
        for job in tqdm(jobs, desc=f"{plan.name}: grids", unit="cell", file=err, disable=False):
            overrides = {**dict(job.overrides), "train.progress": False}
            try:
                grids[job] = prepare_grid(job.model, job.dataset, job.extractor, profile, overrides)
            except Exception as error:  # one broken cell must not stop the table: report it, go on
                fail(job, error)

        batch, owner = [], []
        for job, grid in grids.items():
            todo = make_jobs(grid.todo(store), store, grid.data, grid.features, workers, plan.resources)
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
        if log and (executor == "ray" or workers > 1):  # each RAT teacher once, before the runs sharing it
            execute_all(teacher_jobs(batch), executor, workers, lambda *_: None, train_teacher, address)
        if log:
            execute_all([Logged(job, log.name) for job in batch], executor, workers, on_done, run_logged, address)
        else:
            execute_all(batch, executor, workers, on_done, address=address)
        bar.close()
    return winners, failures


class PerUser:
    """Per-user test values (sampled protocol) of finished runs, read once per run: a Series indexed
    by user id, so that the paired tests pair users by id, never by position."""

    def __init__(self, store: ResultStore):
        self.store, self._frames = store, {}

    def __call__(self, run_key: str, group: str, metric: str) -> pd.Series:
        if run_key not in self._frames:
            users = self.store.per_user(run_key)
            users = users[(users["split"] == "test") & (users["protocol"] == "sampled")]
            if users["user"].duplicated().any():
                raise HarnessError(f"run {run_key} lists a test user twice in per_user.csv.gz; run it again "
                                   "with --force.")
            self._frames[run_key] = users.set_index("user").sort_index()
        users = self._frames[run_key]
        if group == "tail":
            users = users[users["tail"].astype(bool)]
        return users[METRIC_COLUMNS[metric]].astype(float)


def cell_keys(plan: Plan, jobs: list[Job]) -> pd.DataFrame:
    """What identifies each cell of these jobs (the CELL columns), in table order."""
    return pd.DataFrame([{"model": job.model, "extractor": job.extractor, "variant": job.variant,
                          "dataset": job.dataset, "group": group, "metric": metric}
                         for job in jobs for group in plan.groups for metric in plan.metrics])


def collect_cells(plan: Plan, profile: str, jobs: list[Job], winners: dict[Job, str],
                  identity: Callable[[str], dict], per_user: Callable[[str, str, str], pd.Series]) -> pd.DataFrame:
    """One row per (job, group, metric): the winner's value, n, bootstrap CI and provenance
    (`identity(run_key)`: the run's manifest identity); NaN values for failed jobs."""
    from harness.significance import bootstrap_ci

    rows = []
    for job in jobs:
        key = winners.get(job, "")
        ident = identity(key) if key else {}
        for group in plan.groups:
            for metric in plan.metrics:
                values = per_user(key, group, metric) if key else pd.Series(dtype=float)
                low, high = bootstrap_ci(values)
                rows.append({"value": float(values.mean()) if len(values) else np.nan, "n": len(values),
                             "ci_low": low, "ci_high": high, "run_key": key,
                             "data_hash": ident.get("data_hash", ""), "feature_key": ident.get("feature_key", "")})
    keys = cell_keys(plan, jobs)
    return pd.concat([keys.assign(table=plan.name, profile=profile), pd.DataFrame(rows, index=keys.index)], axis=1)


def table_cells(plan: Plan, profile: str, jobs: list[Job], winners: dict[Job, str],
                identity: Callable[[str], dict], per_user: Callable[[str, str, str], pd.Series]) -> pd.DataFrame:
    """The cells of these jobs (all of the plan's, or a partial build's), marked against the plan's
    whole Holm family (so a partial build stars what the full build stars), with Table 3's deltas
    and the paper's values."""
    from harness.significance import comparisons, mark_cells

    cells = collect_cells(plan, profile, jobs, winners, identity, per_user)
    family = comparisons(cell_keys(plan, plan.jobs()), plan.ours)
    cells = mark_cells(cells, plan.ours, per_user, family)
    if plan.delta_against:
        cells = ablation_deltas(cells, plan.delta_against)
    return join_paper(cells, paper_values(plan))


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
    # The paper's asterisk sits on every column's best value (48 of 48 in Table 1): "best in column",
    # kept as its own column beside our significance mark.
    marks = ["paper_marked"] if "marked_significant" in paper.columns else []
    paper = paper.rename(columns={"value": "paper_value", "marked_significant": "paper_marked"})
    if marks:
        paper["paper_marked"] = paper["paper_marked"].astype(bool)
    return paper[[c for c in JOIN_KEYS if c in paper.columns] + ["paper_value", *marks]]


def join_paper(cells: pd.DataFrame, paper: pd.DataFrame | None) -> pd.DataFrame:
    if paper is None:
        return cells.assign(paper_value=np.nan, paper_marked=np.nan, diff=np.nan)
    keys = [c for c in JOIN_KEYS if c in paper.columns]
    out = cells.merge(paper, on=keys, how="left", validate="many_to_one")
    if "paper_marked" not in out.columns:
        out["paper_marked"] = np.nan
    return out.assign(diff=out["value"] - out["paper_value"])


def ablation_deltas(cells: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Table 3's delta, as extra cells with metric "Δ%": for each row (every column that identifies
    it) and group, the mean relative change (%) of its metrics against the `reference` variant's
    row of the same table, profile, model, data set and group; NaN when a metric of either is."""
    from harness.significance import CELL, UNIT

    scope = [c for c in dict.fromkeys(UNIT + CELL)
             if c in cells.columns and c not in ("metric", "variant", "extractor")]
    row = scope + [c for c in ("variant", "extractor") if c in cells.columns]
    ref = cells[cells["variant"] == reference].set_index([*scope, "metric"])["value"]
    base = ref.reindex(pd.MultiIndex.from_frame(cells[[*scope, "metric"]])).to_numpy()
    change = cells.assign(change=(cells["value"].to_numpy() - base) / base * 100)
    kept = {c: (c, "first") for c in ("n", "ours") if c in cells.columns}  # the row's users; ours or not
    deltas = change.groupby(row, sort=False, dropna=False).agg(
        value=("change", lambda x: x.mean(skipna=False)), **kept).reset_index()
    return pd.concat([cells, deltas.assign(metric="Δ%", marked=False)], ignore_index=True)


def build(plan: Plan, profile: str, datasets: list[str] | None = None, executor: str = "local",
          workers: int = 1, store: ResultStore | None = None, address: str | None = None) -> Built:
    """Run what the plan needs and return its cells, marked and joined with the paper."""
    store = store or ResultStore()
    jobs = plan.jobs(datasets)
    name = plan.output_name(profile, datasets)
    began = time.perf_counter()
    log_path = results_dir() / "tables" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        winners, failures = run_jobs(plan, jobs, profile, executor, workers, store, log, address)
    cells = table_cells(plan, profile, jobs, winners, lambda key: store.manifest(key)["identity"], PerUser(store))
    return Built(cells, failures, time.perf_counter() - began, name, list(dict.fromkeys(j.dataset for j in jobs)))
