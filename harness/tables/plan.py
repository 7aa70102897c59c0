"""Plans: one YAML per table or figure (configs/tables/<name>.yaml) listing its cells.

A plan names the data sets, the rows (models x extractors, or an explicit list of rows with a
`variant` label and extractor settings such as `extractor.experts: 4`), the groups and metrics,
which extractor is "ours" for the significance marks, the layout of the rendered table and the
file of the paper's published numbers to join. A researcher adds a row by editing YAML.

Each (row, data set) pair is one job: a grid search picked on validation; its winner fills one
table cell per (group, metric).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from protocol.config import CONFIG_DIR, DEFAULT_PROFILE, config_names, load_group, load_yaml
from protocol.errors import HarnessError

GROUPS = ("overall", "tail")
METRICS = ("HR@10", "NDCG@10")
# table metric name -> (per-user column, k) in the result store
METRIC_COLUMNS = {"HR@5": "hit@5", "HR@10": "hit@10", "HR@20": "hit@20",
                  "NDCG@5": "ndcg@5", "NDCG@10": "ndcg@10", "NDCG@20": "ndcg@20"}
ROW_KEYS = {"model", "extractor", "variant", "overrides"}


@dataclass(frozen=True, eq=False)  # hashed by identity: overrides may hold lists
class Job:
    """One grid of the plan: a model with an extractor (and its settings) on one data set."""

    model: str
    extractor: str
    dataset: str
    variant: str = ""
    overrides: tuple = ()  # sorted (key, value) pairs: hashable, printable

    @property
    def label(self) -> str:
        name = f"{self.model} / {self.extractor}"
        if self.variant and self.variant != self.extractor:
            name += f" [{self.variant}]"
        return f"{name} / {self.dataset}"


@dataclass
class Plan:
    name: str
    title: str
    datasets: list[str]
    rows: list[dict] = field(default_factory=list)
    kind: str = "grid"  # grid: cells from grid winners; stats: each data set's statistics (Table 2)
    ours: str | None = None
    groups: list[str] = field(default_factory=lambda: list(GROUPS))
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    layout: dict = field(default_factory=dict)
    paper: str | None = None  # a file of ../shared/paper
    figure: str | None = None  # a plot of harness.tables.figures, for figure plans
    delta_against: str | None = None  # a variant: add each row's mean relative change to it (Table 3)
    headline: bool = False  # add ours' average relative gain over the best baseline (Table 1's claim)
    # key=value settings for every job that has the setting (a row's own overrides win); a key
    # that no row's model, grid, trainer or extractor has is refused when the plan loads
    overrides: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # what this plan's jobs ask of a Ray cluster, over the profile's `resources:` (harness.cluster)
    resources: dict = field(default_factory=dict)

    def jobs(self, datasets: list[str] | None = None) -> list[Job]:
        """Every job, data sets outermost (so a data set's features and teacher are built once
        and reused by the jobs that follow)."""
        chosen = self.datasets if not datasets else datasets
        unknown = [d for d in chosen if d not in self.datasets]
        if unknown:
            raise HarnessError(f"plan '{self.name}' has no data set '{unknown[0]}'; it covers "
                               f"{', '.join(self.datasets)} (edit configs/tables/{self.name}.yaml to add one).")
        return [Job(row["model"], row["extractor"], dataset, row.get("variant", ""),
                    tuple(sorted({**self.overrides_for(row), **(row.get("overrides") or {})}.items())))
                for dataset in chosen for row in self.rows]

    def overrides_for(self, row: dict) -> dict:
        """The plan-wide overrides that apply to `row`: those its model, grid, trainer or extractor
        takes (`extractor.pca_dim` reaches the rows whose extractor has pca_dim, and no other)."""
        return {k: v for k, v in self.overrides.items() if _takes(row["model"], row["extractor"], k)}

    def output_name(self, profile: str, datasets: list[str] | None = None) -> str:
        """The file stem of this plan's outputs, so that builds of different profiles and partial
        builds never overwrite each other: `table1` (default profile, every data set),
        `table1.paper` (another profile), `table1.partial-toys` (some data sets, in plan order)."""
        name = self.name if profile == DEFAULT_PROFILE else f"{self.name}.{profile}"
        chosen = [d for d in self.datasets if d in (datasets or self.datasets)]
        return name if chosen == self.datasets else f"{name}.partial-{'-'.join(_stem(d) for d in chosen)}"


def _stem(dataset: str) -> str:
    """A data set's name as a file name part (a prepared directory's path gives its last part)."""
    return Path(dataset).name


def _takes(model: str, extractor: str, key: str) -> bool:
    """Whether a job of `model` with `extractor` has setting `key` (a key=value override's key)."""
    import dataclasses

    from extractors.registry import EXTRACTORS
    from recommenders import MODELS
    from recommenders.trainer import TrainConfig

    head, dot, rest = key.partition(".")
    if dot and head == "train":
        return rest in {f.name for f in dataclasses.fields(TrainConfig)}
    if dot and head == "extractor":
        return rest == "modalities" or rest in EXTRACTORS.get(extractor).defaults
    name = rest if dot and head in ("grid", "model") else key
    return name in MODELS.get(model).resolve_params({})


def plan_names() -> list[str]:
    return config_names("tables")


def load_plan(name: str) -> Plan:
    """configs/tables/<name>.yaml (or a plan file's path), checked: unknown keys, models and
    extractors fail with a hint."""
    if name.endswith((".yaml", ".yml")):
        where = Path(name)
        raw, name = dict(load_yaml(where)), where.stem
    else:
        where = CONFIG_DIR / "tables" / f"{name}.yaml"
        raw = dict(load_group("tables", name))
    rows = raw.pop("rows", None)
    models, extractors = raw.pop("models", None), raw.pop("extractors", None)
    if rows is None and raw.get("kind") != "stats":
        if not models or not extractors:
            raise HarnessError(f"{where}: give `rows:` or both `models:` and `extractors:`.")
        rows = [{"model": m, "extractor": e, "variant": e} for m in models for e in extractors]
    try:
        plan = Plan(name=name, rows=rows or [], **raw)
    except TypeError as err:
        raise HarnessError(f"{where}: {err}; see the other plans in configs/tables/ for the keys.") from None
    _check(plan, where)
    return plan


def _check(plan: Plan, where) -> None:
    from extractors.registry import EXTRACTORS
    from recommenders import MODELS

    if plan.kind not in ("grid", "stats"):
        raise HarnessError(f"{where}: kind '{plan.kind}' is not grid or stats.")
    if not plan.datasets or (plan.kind == "grid" and not plan.rows):
        raise HarnessError(f"{where}: a plan needs at least one data set and one row.")
    for row in plan.rows:
        extra = set(row) - ROW_KEYS
        if extra or "model" not in row or "extractor" not in row:
            raise HarnessError(f"{where}: row {row} needs `model` and `extractor` and takes only "
                               f"{', '.join(sorted(ROW_KEYS))}.")
        MODELS.check(row["model"])
        EXTRACTORS.check(row["extractor"])
        row.setdefault("variant", row["extractor"])
        row["variant"] = str(row["variant"])
    for key in plan.overrides:
        if not any(_takes(row["model"], row["extractor"], key) for row in plan.rows):
            raise HarnessError(f"{where}: override '{key}' is a setting of none of the plan's models, grids, "
                               "trainer or extractors; check its spelling (e.g. train.max_epochs, "
                               "extractor.pca_dim, grid.reg_weight).")
    for group in plan.groups:
        if group not in GROUPS:
            raise HarnessError(f"{where}: group '{group}' is not one of {', '.join(GROUPS)}.")
    for metric in plan.metrics:
        if metric not in METRIC_COLUMNS:
            raise HarnessError(f"{where}: metric '{metric}' is not one of {', '.join(METRIC_COLUMNS)}.")
    if plan.ours is not None and plan.ours not in {r["extractor"] for r in plan.rows}:
        raise HarnessError(f"{where}: ours '{plan.ours}' is not the extractor of any row.")
