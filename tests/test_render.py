"""Markdown and LaTeX tables from cells: hand-written golden strings for a 2 x 2 plan, layouts, mistakes."""
import numpy as np
import pandas as pd
import pytest

from harness.tables.render import render_latex, render_markdown
from protocol.errors import HarnessError

nan = np.nan


def _plan_cells():
    """2 models x 2 extractors x (beauty, tail) x (HR@10, NDCG@10); models listed vbpr first to pin the
    order of first appearance (not alphabetical)."""
    rows = [  # model, extractor, metric, value, n, marked, paper_value
        ("vbpr", "base", "HR@10", 0.41234, 120, False, 0.4258),
        ("vbpr", "base", "NDCG@10", 0.28, 120, False, 0.2852),
        ("vbpr", "sda_lora", "HR@10", 0.45006, 120, True, nan),
        ("vbpr", "sda_lora", "NDCG@10", nan, 0, False, 0.3),       # failed run: no value, paper has one
        ("sasrec", "base", "HR@10", 0.5, 120, False, nan),         # n differs in the NDCG column only,
        ("sasrec", "base", "NDCG@10", 0.31, 118, False, nan),      # to show the per-column range
        ("sasrec", "sda_lora", "HR@10", 0.49996, 120, False, nan),  # prints 0.5000: a tie, both bold
        ("sasrec", "sda_lora", "NDCG@10", 0.3, 120, False, nan),
    ]
    cells = pd.DataFrame(rows, columns=["model", "extractor", "metric", "value", "n", "marked", "paper_value"])
    return cells.assign(dataset="beauty", group="tail")


LAYOUT = {"rows": ("model", "extractor"), "columns": ("dataset", "group", "metric")}
CAPTION = "Table 1 (mini): HR & NDCG, 100% sampled #neg_items, p < 0.05"

EXPECTED_MD = """\
Table 1 (mini): HR & NDCG, 100% sampled #neg\\_items, p < 0.05

| model | extractor | beauty / tail / HR@10 | beauty / tail / NDCG@10 |
|:---|:---|---:|---:|
| vbpr | base | 0.4123 (0.4258) | **0.2800** (0.2852) |
|  | sda\\_lora | **0.4501**\\* | – (0.3000) |
| sasrec | base | **0.5000** | **0.3100** |
|  | sda\\_lora | **0.5000** | 0.3000 |
| n |  | 120 | 118–120 |

- Profile mini, commit 0123abc.
- \\* marks sda\\_lora.
"""

EXPECTED_TEX = r"""\begin{table*}[tp]
\centering
\caption{Table 1 (mini): HR \& NDCG, 100\% sampled \#neg\_items, p $<$ 0.05}
\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%
\begin{tabular}{llrr}
\toprule
 &  & \multicolumn{2}{c}{beauty} \\
\cmidrule(lr){3-4}
 &  & \multicolumn{2}{c}{tail} \\
\cmidrule(lr){3-4}
model & extractor & HR@10 & NDCG@10 \\
\midrule
vbpr & base & 0.4123 & \textbf{0.2800} \\[-3pt]
 &  & {\scriptsize(0.4258)} & {\scriptsize(0.2852)} \\
 & sda\_lora & \textbf{0.4501}$^{*}$ & -- \\[-3pt]
 &  &  & {\scriptsize(0.3000)} \\
\midrule
sasrec & base & \textbf{0.5000} & \textbf{0.3100} \\
 & sda\_lora & \textbf{0.5000} & 0.3000 \\
\midrule
$n$ &  & 120 & 118--120 \\
\bottomrule
\end{tabular}
}
\par\smallskip\footnotesize
Profile mini, commit 0123abc.\par
* marks sda\_lora.\par
\end{table*}
"""

NOTES = ["Profile mini, commit 0123abc.", "* marks sda_lora."]


def test_markdown_golden_two_models_two_extractors():
    assert render_markdown(_plan_cells(), caption=CAPTION, notes=NOTES, **LAYOUT) == EXPECTED_MD


def test_latex_golden_two_models_two_extractors():
    assert render_latex(_plan_cells(), caption=CAPTION, notes=NOTES, **LAYOUT) == EXPECTED_TEX


def test_layout_follows_row_order_in_the_cells_not_the_frame_index():
    # Shuffling the frame while keeping first appearances (vbpr before sasrec, base before sda_lora,
    # HR before NDCG) gives the same table; reversing it reverses rows and columns.
    cells = _plan_cells()
    shuffled = cells.iloc[[0, 2, 1, 4, 3, 5, 6, 7]].astype({"marked": object})
    shuffled.loc[shuffled["extractor"] == "base", "marked"] = nan  # a cell the builder left unmarked
    assert render_markdown(shuffled, caption=CAPTION, notes=NOTES, **LAYOUT) == EXPECTED_MD
    reversed_md = render_markdown(cells.iloc[::-1], caption="c", **LAYOUT).splitlines()
    assert reversed_md[2] == "| model | extractor | beauty / tail / NDCG@10 | beauty / tail / HR@10 |"
    assert reversed_md[4].startswith("| sasrec | sda\\_lora |")


def test_one_row_level_bolds_across_the_whole_table_and_percent_metrics_use_two_decimals():
    # An ablation: variants as rows, one row group; Δ% printed with 2 decimals like the paper.
    cells = pd.DataFrame({"variant": ["SDA", "SDA", "w/o MoDA", "w/o MoDA"],
                          "metric": ["HR@10", "Δ%", "HR@10", "Δ%"], "value": [0.5752, 0.0, 0.5604, -2.6512],
                          "n": [50, 50, 50, 50], "paper_value": [0.5752, 0.0, 0.5604, -2.65]})
    md = render_markdown(cells, rows=("variant",), columns=("metric",), caption="Ablation").splitlines()
    assert md[2:7] == ["| variant | HR@10 | Δ% |", "|:---|---:|---:|",
                       "| SDA | **0.5752** (0.5752) | **0.00** (0.00) |",
                       "| w/o MoDA | 0.5604 (0.5604) | -2.65 (-2.65) |", "| n | 50 | 50 |"]
    tex = render_latex(cells, rows=("variant",), columns=("metric",), caption="Ablation")
    assert "variant & HR@10 & $\\Delta$\\% \\\\" in tex and "\\cmidrule" not in tex  # one header level
    assert "w/o MoDA & 0.5604 & -2.65 \\\\[-3pt]\n & {\\scriptsize(0.5604)} & {\\scriptsize(-2.65)} \\\\" in tex
    assert tex.count("\\midrule") == 2  # below the header and above n: no row groups to separate


def test_layout_mistakes_are_one_line_errors():
    cells = _plan_cells()
    with pytest.raises(HarnessError, match="same spot"):
        render_markdown(cells, rows=("model",), columns=("dataset", "metric"), caption="c")
    with pytest.raises(HarnessError, match=r"no column\(s\) \['split'\]"):
        render_latex(cells, rows=("model", "split"), columns=("metric",), caption="c")
    with pytest.raises(HarnessError, match="one or two row columns"):
        render_markdown(cells, rows=("model", "extractor", "group"), columns=("metric",), caption="c")
    with pytest.raises(HarnessError, match="no cells"):
        render_markdown(cells.iloc[:0], caption="c", **LAYOUT)
