"""Write a built plan: results/tables/<name>.{csv,md,tex} for tables, results/figures/<name>.{png,pdf}
for figures; every output states its profile, date, git commit and the hashes behind it."""
from __future__ import annotations

import datetime
from pathlib import Path

import pandas as pd

from harness.config import load_profile, results_dir
from harness.fileio import atomic_path
from harness.provenance import git_commit
from harness.tables.build import Built
from harness.tables.plan import Plan

COLUMNS = ["table", "profile", "model", "extractor", "variant", "dataset", "group", "metric", "value", "n",
           "ci_low", "ci_high", "baseline", "p_ttest", "p_wilcoxon", "p_holm", "marked", "ours",
           "paper_value", "diff", "run_key", "data_hash", "feature_key", "error"]


def with_errors(built: Built) -> pd.DataFrame:
    """The cells with an `error` column: why a failed job's cells are empty."""
    reasons = {(j.model, j.extractor, j.variant, j.dataset): r for j, r in built.failures.items()}
    keys = zip(built.cells["model"], built.cells["extractor"], built.cells["variant"], built.cells["dataset"])
    return built.cells.assign(error=[reasons.get(k, "") for k in keys])[COLUMNS]


def provenance_line(profile: str, hashes: dict[str, str], extra: str = "") -> str:
    """Profile, date, commit and short data hashes: the line every table and figure carries; a
    mini-profile line also says its numbers check the pipeline, not the paper."""
    data = ", ".join(f"{name} {h[:8]}" for name, h in hashes.items() if isinstance(h, str) and h)
    line = (f"Profile {profile}, {datetime.date.today().isoformat()}, commit {git_commit()[:12]}; "
            f"data {data or 'none'}{'; ' + extra if extra else ''}.")
    note = load_profile(profile).get("note", "")
    return f"{line} {note[0].upper() + note[1:]}." if profile == "mini" and note else line


def provenance(cells: pd.DataFrame, profile: str) -> str:
    hashes = cells[cells["data_hash"] != ""].groupby("dataset", sort=False)["data_hash"].first().to_dict()
    features = cells.loc[~cells["feature_key"].isin(["", "id"]), "feature_key"].nunique()
    return provenance_line(profile, hashes, f"{features} feature set(s), keys per cell in the CSV")


def headline_gains(cells: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per group: ours' average relative gain (%) over the best baseline, recomputed from our values
    and from the paper's values of the same cells."""
    from harness.significance import relative_gain

    unit = ["model", "dataset", "group", "metric"]
    baselines = cells[~cells["ours"]].groupby(unit)
    best = baselines["value"].max(), baselines["paper_value"].max()
    out = {}
    for group, part in cells[cells["ours"]].groupby("group", sort=False):
        index = pd.MultiIndex.from_frame(part[unit])
        out[group] = (relative_gain(part["value"].to_numpy(), best[0].reindex(index).to_numpy()),
                      relative_gain(part["paper_value"].to_numpy(), best[1].reindex(index).to_numpy()))
    return out


def notes_for(plan: Plan, cells: pd.DataFrame) -> list[str]:
    from harness.significance import MIN_TEST_N

    notes = list(plan.notes)
    if plan.ours:
        notes.append(f"* marks {plan.ours} significantly better than the best other extractor of its row group "
                     f"(paired two-sided t-test on per-user values, Holm-corrected over the table, p < 0.05; "
                     f"no test where n < {MIN_TEST_N}).")
    notes.append("Bold is the best per column within each row group"
                 + ("; the paper's values in parentheses." if plan.paper else "."))
    if plan.ours and plan.headline:
        for group, (ours, paper) in headline_gains(cells).items():
            notes.append(f"Average relative gain of {plan.ours} over the best baseline, {group}: {ours:+.2f}% "
                         f"(the paper's values give {paper:+.2f}%).")
    return notes


def write_table(plan: Plan, built: Built, profile: str, out_dir: Path | None = None) -> list[Path]:
    from harness.tables.render import render_latex, render_markdown

    out_dir = out_dir or results_dir() / "tables"
    cells = with_errors(built)
    caption = f"{plan.title}. {provenance(cells, profile)}"
    layout = {"rows": tuple(plan.layout.get("rows", ("model", "extractor"))),
              "columns": tuple(plan.layout.get("columns", ("dataset", "group", "metric")))}
    notes = notes_for(plan, cells)
    paths = []
    for suffix, text in (("csv", None), ("md", render_markdown(cells, caption=caption, notes=notes, **layout)),
                         ("tex", render_latex(cells, caption=caption, notes=notes, **layout))):
        path = out_dir / f"{plan.name}.{suffix}"
        with atomic_path(path) as tmp:
            if text is None:
                cells.to_csv(tmp, index=False, float_format="%.6g")
            else:
                tmp.write_text(text)
        paths.append(path)
    return paths


def write_figure(plan: Plan, built: Built, profile: str, out_dir: Path | None = None) -> list[Path]:
    from harness.tables import figures

    out_dir = out_dir or results_dir() / "figures"
    cells = with_errors(built)
    with atomic_path(out_dir / f"{plan.name}.csv") as tmp:
        cells.to_csv(tmp, index=False, float_format="%.6g")
    plot = getattr(figures, f"plot_{plan.figure}")
    return [out_dir / f"{plan.name}.csv", *plot(cells, provenance(cells, profile), out_dir / plan.name)]
