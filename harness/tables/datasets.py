"""Table 2: each data set's statistics beside the paper's (which counts after its own preprocessing)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.tables.plan import Plan
from protocol.fileio import atomic_path

COLUMNS = {"users": "Users", "items": "Items", "interactions": "Interactions", "sparsity_percent": "Sparsity %",
           "avg_length": "Mean length", "tail_items": "Tail items", "tail_test_users": "Tail test users"}


def statistics(plan: Plan, profile: str) -> pd.DataFrame:
    """One row per data set of the plan (prepared on first use), then the paper's rows."""
    from harness.tables.build import PAPER_DIR
    from protocol.data.prepare import load_dataset
    from protocol.data.stats import stats_row

    rows = []
    for name in plan.datasets:
        row = stats_row(load_dataset(name, profile)).iloc[0]
        source = "5-core (../shared/data)" if name.endswith("-5core") else f"{profile} profile"
        rows.append(row.to_dict() | {"source": source, "sparsity_percent": round(100 * row["sparsity"], 3)})
    ours = pd.DataFrame(rows).drop(columns=["sparsity"])
    paper = pd.read_csv(PAPER_DIR / plan.paper).assign(source="paper (Table 2)") if plan.paper else None
    table = pd.concat([ours, paper], ignore_index=True) if paper is not None else ours
    return table[["dataset", "source", *COLUMNS, "tail_threshold", "content_hash"]]


def write_statistics(table: pd.DataFrame, name: str, caption: str, out_dir: Path) -> list[Path]:
    """<out_dir>/<name>.{csv,md,tex}; `name` is the plan's output name for the profile, so that
    another profile's Table 2 never writes over this one."""
    from harness.tables.render import latex_float

    shown = table.rename(columns={"dataset": "Data set", "source": "Source", **COLUMNS})
    shown = shown[["Data set", "Source", *COLUMNS.values()]]
    for col in ("Users", "Items", "Interactions", "Tail items", "Tail test users"):
        shown[col] = shown[col].map(lambda v: "–" if pd.isna(v) else f"{int(v):,}")
    shown["Mean length"] = shown["Mean length"].map(lambda v: "–" if pd.isna(v) else f"{v:.2f}")
    shown["Sparsity %"] = shown["Sparsity %"].map(lambda v: f"{v:.3f}")
    # pandas writes the booktabs tabular ("–" as "--" for pdflatex); the float is the one every table uses.
    tabular = shown.replace("–", "--").to_latex(index=False, escape=True, column_format="ll" + "r" * len(COLUMNS))
    texts = {"csv": None,
             "md": f"**Table 2.** {caption}\n\n{shown.to_markdown(index=False)}\n",
             "tex": latex_float(tabular, caption, label=f"tab:{name.split('.')[0]}")}
    paths = []
    for suffix, text in texts.items():
        path = out_dir / f"{name}.{suffix}"
        with atomic_path(path) as tmp:
            if text is None:
                table.to_csv(tmp, index=False)
            else:
                tmp.write_text(text)
        paths.append(path)
    return paths
