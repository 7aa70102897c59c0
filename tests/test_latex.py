"""The LaTeX a paper pastes in: every table the plans produce compiles with pdflatex on a letter page with
1-inch margins (one and two columns) without an error, an overfull box or a float too large.

Cells are synthetic, shaped like the full builds (Table 1: 4 models x 4 extractors x 3 data sets x
2 groups x 2 metrics = 192 cells with paper values, marks, a failed job and n in the tens of
thousands; Table 3 with its deltas; Table 2's statistics), so no training runs. Needs pdflatex
(Debian: texlive-latex-base, texlive-latex-recommended; .ci/run installs them): skipped without
it, which CI=true turns into a failure.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from harness.tables.build import Built, ablation_deltas, join_paper, paper_values
from harness.tables.plan import load_plan
from harness.tables.report import COLUMNS, write_table

pytestmark = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                reason="pdflatex missing: apt-get install texlive-latex-base texlive-latex-recommended")

DOCUMENT = r"""\documentclass[letterpaper,10pt{columns}]{{article}}
\usepackage[letterpaper,margin=1in]{{geometry}}
\usepackage{{booktabs}}
\usepackage{{graphicx}}
\begin{{document}}
Text before the table.
\input{{{table}}}
Text after the table.
\end{{document}}
"""


def _cells(plan_name: str, seed: int = 0) -> Built:
    """A build's cells for the plan, every column filled as the builder fills it, with long values."""
    plan = load_plan(plan_name)
    rng = np.random.default_rng(seed)
    jobs = plan.jobs()
    rows = []
    for job in jobs:
        for group in plan.groups:
            for metric in plan.metrics:
                ours = job.extractor == plan.ours
                n = int(rng.integers(48_000, 50_498)) if group == "overall" else int(rng.integers(9_000, 22_363))
                rows.append({"table": plan.name, "profile": "paper", "model": job.model, "extractor": job.extractor,
                             "variant": job.variant, "dataset": job.dataset, "group": group, "metric": metric,
                             "value": rng.uniform(0.01, 0.99), "n": n, "ci_low": 0.0123456, "ci_high": 0.9876543,
                             "baseline": "clip" if ours else "", "t_stat": 12.3456789 if ours else np.nan,
                             "p_ttest": 1e-320 if ours else np.nan, "p_wilcoxon": 1e-310 if ours else np.nan,
                             "p_holm": 0.0 if ours else np.nan, "holm_m": 48.0 if ours else np.nan,
                             "marked": ours and bool(rng.random() < 0.8), "test_status": "tested" if ours else "",
                             "ours": ours, "run_key": "f" * 16, "data_hash": "a" * 64,
                             "feature_key": "b" * 16})
    cells = pd.DataFrame(rows)
    failed = jobs[-1]  # a failed job: empty cells (shown as --), its reason in the CSV
    mask = ((cells["model"] == failed.model) & (cells["extractor"] == failed.extractor)
            & (cells["dataset"] == failed.dataset))
    cells.loc[mask, ["value", "n", "run_key", "marked"]] = [np.nan, 0, "", False]
    if plan.delta_against:
        cells = ablation_deltas(cells, plan.delta_against)
    cells = join_paper(cells, paper_values(plan))
    built = Built(cells[[c for c in COLUMNS if c != "error"]], {failed: "a reason " * 8}, 1.0,
                  plan.output_name("paper"), plan.datasets)
    return plan, built


def _compile(tex, tmp_path, columns: str) -> str:
    doc = tmp_path / f"doc-{tex.stem}{columns}.tex"
    doc.write_text(DOCUMENT.format(columns=columns, table=tex.name))
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    log = doc.with_suffix(".log").read_text(errors="replace")
    assert done.returncode == 0, log[-3000:]
    return log


@pytest.mark.parametrize("columns", ["", ",twocolumn"])
@pytest.mark.parametrize("name", ["table1", "table3"])
def test_plan_tables_fit_a_letter_page(name, columns, tmp_path):
    plan, built = _cells(name)
    if name == "table1":
        assert len(built.cells) == 192 and built.cells["marked"].any() and built.cells["paper_value"].notna().all()
    paths = write_table(plan, built, "paper", tmp_path)
    tex = next(p for p in paths if p.suffix == ".tex")
    assert tex.name == f"{name}.paper.tex"
    text = tex.read_text()
    assert "\\begin{table*}" in text and "\\resizebox" in text
    log = _compile(tex, tmp_path, columns)
    assert "Overfull" not in log and "Float too large" not in log and "\n!" not in log


@pytest.mark.parametrize("columns", ["", ",twocolumn"])
def test_table2_fits_a_letter_page(columns, tmp_path):
    from harness.tables.build import PAPER_DIR
    from harness.tables.datasets import write_statistics

    paper = pd.read_csv(PAPER_DIR / "table2.csv").assign(source="paper (Table 2)")
    ours = paper.assign(source="5-core (../shared/data)", dataset=paper["dataset"] + "-5core", avg_length=8.876543,
                        tail_items=123_456, tail_test_users=12_345, tail_threshold=4, content_hash="c" * 64)
    table = pd.concat([ours, paper], ignore_index=True)[["dataset", "source", "users", "items", "interactions",
                                                          "sparsity_percent", "avg_length", "tail_items",
                                                          "tail_test_users", "tail_threshold", "content_hash"]]
    caption = "Data set statistics. Profile paper, 2026-12-06, commit 0123456789ab; data beauty 1a2b3c4d."
    paths = write_statistics(table, "table2.paper", caption, tmp_path)
    tex = next(p for p in paths if p.suffix == ".tex")
    log = _compile(tex, tmp_path, columns)
    assert "Overfull" not in log and "Float too large" not in log and "\n!" not in log
