"""Write a built plan: results/tables/<name>.{csv,md,tex} for tables, results/figures/<name>.{png,pdf}
for figures; every output states its profile, date, git commit and the hashes behind it."""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from harness.tables.build import Built
from harness.tables.plan import Plan
from protocol.config import load_profile, results_dir
from protocol.fileio import atomic_path
from protocol.provenance import git_commit

COLUMNS = ["table", "profile", "model", "extractor", "variant", "dataset", "group", "metric", "value", "n",
           "ci_low", "ci_high", "baseline", "t_stat", "p_ttest", "p_wilcoxon", "p_holm", "holm_m", "marked",
           "test_status", "ours", "paper_value", "paper_marked", "diff", "run_key", "data_hash", "feature_key",
           "error"]
P_COLUMNS = ["p_ttest", "p_wilcoxon", "p_holm"]


def with_errors(built: Built) -> pd.DataFrame:
    """The cells with an `error` column: why a failed job's cells are empty."""
    reasons = {(j.model, j.extractor, j.variant, j.dataset): r for j, r in built.failures.items()}
    keys = zip(built.cells["model"], built.cells["extractor"], built.cells["variant"], built.cells["dataset"])
    return built.cells.assign(error=[reasons.get(k, "") for k in keys])[COLUMNS]


def write_csv(cells: pd.DataFrame, path: Path) -> None:
    """The tidy CSV, atomically. p-values go through format_p: one that underflowed to 0.0 at ~50k
    users is written "< 1e-300", never 0 (t_stat beside it says how far out it is)."""
    from harness.significance import format_p

    shown = cells.assign(**{c: cells[c].map(format_p) for c in P_COLUMNS if c in cells.columns})
    with atomic_path(path) as tmp:
        shown.to_csv(tmp, index=False, float_format="%.6g")


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


def headline_gains(cells: pd.DataFrame) -> dict[str, dict[str, tuple[float, int]]]:
    """Per group: ours' average relative gain (%) over the best baseline and the cells it covers,
    from our values ("ours": complete comparisons only, so that a failed baseline never lowers the
    bar), from the paper's values of the same cells ("paper_same") and of every cell with a paper
    value ("paper")."""
    from harness.significance import INCOMPLETE, relative_gain_n

    unit = ["model", "dataset", "group", "metric"]
    best = cells[~cells["ours"]].groupby(unit)[["value", "paper_value"]].max()
    out = {}
    for group, part in cells[cells["ours"]].groupby("group", sort=False):
        against = best.reindex(pd.MultiIndex.from_frame(part[unit]))
        complete = ~part["test_status"].fillna("").str.startswith(INCOMPLETE).to_numpy()
        ours = part["value"].to_numpy(dtype=float)
        paper = part["paper_value"].to_numpy(dtype=float)
        out[group] = {"ours": relative_gain_n(np.where(complete, ours, np.nan), against["value"].to_numpy()),
                      "paper_same": relative_gain_n(np.where(complete & ~np.isnan(ours), paper, np.nan),
                                                    against["paper_value"].to_numpy()),
                      "paper": relative_gain_n(paper, against["paper_value"].to_numpy())}
    return out


def _family_notes(plan: Plan, cells: pd.DataFrame, datasets: list[str]) -> list[str]:
    """What our mark means, the Holm family and what of it has no test; a partial build says so."""
    from harness.significance import INCOMPLETE, MIN_TEST_N, NO_TEST, PENDING, TESTED

    ours = cells[cells["ours"] & cells["holm_m"].notna()]
    m = int(ours["holm_m"].max()) if len(ours) else 0
    status = ours["test_status"].fillna("")
    counts = {"tested": int((status.eq(TESTED) | status.str.startswith(PENDING)).sum()),
              f"not tested (n < {MIN_TEST_N} or no users)": int(status.str.startswith(NO_TEST).sum()),
              "incomplete (a run of the comparison failed: no test, no star, no gain)":
                  int(status.str.startswith(INCOMPLETE).sum()),
              "outside this partial build": m - len(ours)}
    parts = [f"{n} {what}" for what, n in counts.items() if n or what == "tested"]
    notes = [f"* marks {plan.ours} significantly better than the best other extractor of its model, data set, "
             "group and metric: paired two-sided t-test on per-user values (paired by user id), Holm-corrected "
             f"over the plan's family of {m} comparisons, p < 0.05; a comparison without a test counts as "
             f"p = 1. Here {'; '.join(parts)} (column test_status of the CSV)."]
    if set(datasets) != set(plan.datasets):
        notes.append(f"Partial build: data sets {', '.join(datasets)} of {', '.join(plan.datasets)}. A star here "
                     f"is a star of the full build; {int(status.str.startswith(PENDING).sum())} cell(s) are "
                     "pending, decided only by the full build.")
    return notes


def notes_for(plan: Plan, cells: pd.DataFrame, datasets: list[str] | None = None) -> list[str]:
    notes = list(plan.notes)
    if plan.ours:
        notes += _family_notes(plan, cells, datasets or plan.datasets)
    if "paper_marked" in cells and cells["paper_marked"].notna().any():
        notes.append("The paper's asterisk (CSV column paper_marked) sits on the best value of every column of "
                     f"every model ({int(cells['paper_marked'].eq(True).sum())} of the cells here), so it reads as "
                     "best in column, not as a significance test; our * (column marked) is the test above.")
    notes.append("Bold is the best per column within each row group"
                 + ("; the paper's values in parentheses." if plan.paper else "."))
    if plan.ours and plan.headline:
        for group, gains in headline_gains(cells).items():
            (ours, n), (same, n_same), (paper, n_paper) = gains["ours"], gains["paper_same"], gains["paper"]
            also = f"; {paper:+.2f}% over all its {n_paper}" if n_paper != n_same else ""
            notes.append(f"Average relative gain of {plan.ours} over the best baseline, {group}: {ours:+.2f}% over "
                         f"{n} complete cell(s) (the paper's values give {same:+.2f}% over the same {n_same}{also}).")
    return notes


def write_table(plan: Plan, built: Built, profile: str, out_dir: Path | None = None) -> list[Path]:
    """results/tables/<built.name>.{csv,md,tex}: a partial build or another profile never writes
    over the default profile's full table."""
    from harness.tables.render import render_latex, render_markdown

    out_dir = out_dir or results_dir() / "tables"
    name = built.name or plan.output_name(profile)
    cells = with_errors(built)
    caption = f"{plan.title}. {provenance(cells, profile)}"
    if name != plan.output_name(profile):
        caption = f"{caption} Partial build: {', '.join(built.datasets)} only."
    layout = {"rows": tuple(plan.layout.get("rows", ("model", "extractor"))),
              "columns": tuple(plan.layout.get("columns", ("dataset", "group", "metric")))}
    notes = notes_for(plan, cells, built.datasets)
    paths = [out_dir / f"{name}.{suffix}" for suffix in ("csv", "md", "tex")]
    write_csv(cells, paths[0])
    for path, text in zip(paths[1:], (render_markdown(cells, caption=caption, notes=notes, **layout),
                                      render_latex(cells, caption=caption, notes=notes, **layout))):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return paths


def write_figure(plan: Plan, built: Built, profile: str, out_dir: Path | None = None) -> list[Path]:
    from harness.tables import figures

    out_dir = out_dir or results_dir() / "figures"
    name = built.name or plan.output_name(profile)
    cells = with_errors(built)
    write_csv(cells, out_dir / f"{name}.csv")
    plot = getattr(figures, f"plot_{plan.figure}")
    return [out_dir / f"{name}.csv", *plot(cells, provenance(cells, profile), out_dir / name)]
