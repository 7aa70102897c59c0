"""Markdown and LaTeX renderings of a table's cells (docs/schema: one row per cell) for any layout.

`rows` names one or two of the cells' columns (two: the first groups rows, as models group
extractors in the paper's Table 1), `columns` the header levels (e.g. dataset, group, metric).
Rows and columns keep the order in which their labels first appear in the cells. A cell shows its
value with 4 decimals (2 for percent metrics such as "Δ%"), bold where it is the best of its column
within its row group, an asterisk where `marked`, and the paper's value in parentheses: beside it in
Markdown, on a small line under its row in LaTeX (beside, a 12-column Table 1 is twice a page wide).
A last row gives the users behind each column (n).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from protocol.errors import HarnessError

NA = {"md": "–", "tex": "--"}


def render_markdown(cells: pd.DataFrame, rows: Sequence[str], columns: Sequence[str], caption: str,
                    notes: Sequence[str] = ()) -> str:
    """A GitHub Markdown table: caption paragraph, one header row ("beauty / tail / HR@10"), notes below."""
    row_keys, col_keys, text, paper, n_row = _layout(cells, rows, columns, "md")
    lines = [_md(caption), "",
             "| " + " | ".join([*map(_md, rows), *(_md(" / ".join(map(str, c))) for c in col_keys)]) + " |",
             "|" + ":---|" * len(rows) + "---:|" * len(col_keys)]
    for i, r in enumerate(row_keys):
        labels = [_md(x) for x in r]
        if len(r) == 2 and i and row_keys[i - 1][0] == r[0]:
            labels[0] = ""  # the row group's label stands on its first row only
        shown = (text[r, c] + (f" ({paper[r, c]})" if paper[r, c] else "") for c in col_keys)
        lines.append("| " + " | ".join([*labels, *shown]) + " |")
    lines.append("| " + " | ".join(["n", *[""] * (len(rows) - 1), *n_row]) + " |")
    lines += [""] + [f"- {_md(note)}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"


def render_latex(cells: pd.DataFrame, rows: Sequence[str], columns: Sequence[str], caption: str,
                 notes: Sequence[str] = ()) -> str:
    """A booktabs tabular in a full-width float (`latex_float`): one header line per column level,
    \\multicolumn over equal labels with \\cmidrule under them, \\midrule between row groups."""
    row_keys, col_keys, text, paper, n_row = _layout(cells, rows, columns, "tex")
    k = len(rows)
    lines = [f"\\begin{{tabular}}{{{'l' * k}{'r' * len(col_keys)}}}", "\\toprule"]
    for level in range(len(columns) - 1):
        spans = _spans([c[:level + 1] for c in col_keys])
        heads = [f"\\multicolumn{{{b - a}}}{{c}}{{{_tex(label[-1])}}}" for label, a, b in spans]
        lines.append(" & ".join([""] * k + heads) + " \\\\")
        lines.append(" ".join(f"\\cmidrule(lr){{{k + a + 1}-{k + b}}}" for _, a, b in spans))
    lines.append(" & ".join([*map(_tex, rows), *(_tex(c[-1]) for c in col_keys)]) + " \\\\")
    lines.append("\\midrule")
    for i, r in enumerate(row_keys):
        labels = [_tex(x) for x in r]
        if k == 2 and i and row_keys[i - 1][0] == r[0]:
            labels[0] = ""
        elif k == 2 and i:
            lines.append("\\midrule")
        has_paper = any(paper[r, c] for c in col_keys)
        # the paper's line hangs close under its row: a \scriptsize line keeps the full row height
        lines.append(" & ".join([*labels, *(text[r, c] for c in col_keys)]) + " \\\\" + "[-3pt]" * has_paper)
        if has_paper:
            lines.append(" & ".join([""] * k + [f"{{\\scriptsize({paper[r, c]})}}" if paper[r, c] else ""
                                               for c in col_keys]) + " \\\\")
    lines += ["\\midrule", " & ".join(["$n$", *[""] * (k - 1), *n_row]) + " \\\\", "\\bottomrule",
              "\\end{tabular}"]
    return latex_float("\n".join(lines), caption, notes)


def latex_float(tabular: str, caption: str, notes: Sequence[str] = (), label: str = "") -> str:
    """A tabular as a paper pastes it (needs booktabs and graphicx): a full-width `table*` float (both
    columns of a two-column paper, the text block of a one-column one), caption on top, notes in
    \\footnotesize below. A tabular wider than \\textwidth is scaled down to it, never up (Table 1's
    14 columns are 258 pt too wide for a letter page with 1-inch margins); caption and notes wrap."""
    lines = ["\\begin{table*}[tp]", "\\centering", f"\\caption{{{_tex(caption)}}}"]
    lines += [f"\\label{{{label}}}"] if label else []
    lines += ["\\resizebox{\\ifdim\\width>\\textwidth\\textwidth\\else\\width\\fi}{!}{%", tabular.rstrip("\n"), "}"]
    if notes:
        lines += ["\\par\\smallskip\\footnotesize"] + [f"{_tex(note)}\\par" for note in notes]
    lines.append("\\end{table*}")
    return "\n".join(lines) + "\n"


def _layout(cells: pd.DataFrame, rows: Sequence[str], columns: Sequence[str], fmt: str):
    """Row and column keys in order of first appearance, each cell's text and paper value text, the n row."""
    rows, columns = list(rows), list(columns)
    if len(rows) not in (1, 2) or not columns:
        raise HarnessError(f"a table layout needs one or two row columns and at least one header column, got "
                           f"rows={rows} columns={columns}; fix `layout:` in the table plan.")
    missing = sorted(set(rows + columns + ["value", "n"]) - set(cells.columns))
    if missing:
        raise HarnessError(f"the cells have no column(s) {missing}; the layout can name only "
                           f"{sorted(cells.columns)}.")
    if cells.empty:
        raise HarnessError("no cells to render: the plan produced no runs; check its models, extractors and data sets.")
    keys = cells[rows + columns].astype(str)
    dup = keys.duplicated(keep=False)
    if dup.any():
        raise HarnessError(f"the layout {rows} x {columns} puts {int(dup.sum())} cells on the same spot (e.g. "
                           f"{tuple(keys[dup].iloc[0])}); add the column that tells them apart to rows or columns.")
    row_of = list(keys[rows].itertuples(index=False, name=None))
    col_of = list(keys[columns].itertuples(index=False, name=None))
    row_keys, col_keys = list(dict.fromkeys(row_of)), list(dict.fromkeys(col_of))
    values = cells["value"].to_numpy(dtype=float)
    decimals = np.array([2 if str(m).endswith("%") else 4 for m in cells.get("metric", [""] * len(cells))])
    shown = np.array([round(v, d) if not np.isnan(v) else np.nan for v, d in zip(values, decimals)])
    # Best per column within a row group, on the rounded values so that printed ties are both bold.
    col_pos = {c: j for j, c in enumerate(col_keys)}
    column = [col_pos[c] for c in col_of]
    group = [r[0] if len(rows) == 2 else "" for r in row_of]
    best = pd.Series(shown).groupby([group, column]).transform("max").to_numpy()
    marked = cells["marked"].eq(True).to_numpy() if "marked" in cells else np.zeros(len(cells), bool)  # NaN: no
    paper = cells["paper_value"].to_numpy(dtype=float) if "paper_value" in cells else np.full(len(cells), np.nan)
    text = {(r, c): NA[fmt] for r in row_keys for c in col_keys}
    paper_text = {(r, c): "" for r in row_keys for c in col_keys}
    for i, (r, c) in enumerate(zip(row_of, col_of)):
        text[r, c] = _cell(shown[i], decimals[i], shown[i] == best[i], marked[i], fmt)
        paper_text[r, c] = "" if np.isnan(paper[i]) else f"{paper[i]:.{decimals[i]}f}"
    # n over the cells that show a value (a failed run's n = 0 says nothing about the column).
    n = cells["n"].where(~np.isnan(values)).groupby(column).agg(["min", "max"])
    n_row = [_range(*n.loc[j], fmt) if j in n.index else NA[fmt] for j in range(len(col_keys))]
    return row_keys, col_keys, text, paper_text, n_row


def _cell(value: float, decimals: int, best: bool, marked: bool, fmt: str) -> str:
    out = NA[fmt] if np.isnan(value) else f"{value:.{decimals}f}"
    if best:
        out = f"**{out}**" if fmt == "md" else f"\\textbf{{{out}}}"
    if marked:
        out += "\\*" if fmt == "md" else "$^{*}$"
    return out


def _range(low, high, fmt: str) -> str:
    if pd.isna(low):
        return NA[fmt]
    return f"{int(low)}" if low == high else f"{int(low)}{'–' if fmt == 'md' else '--'}{int(high)}"


def _spans(labels: list[tuple]) -> list[tuple[tuple, int, int]]:
    """Runs of equal consecutive labels as (label, start, end) column positions, end exclusive."""
    spans = []
    for i, label in enumerate(labels):
        if spans and spans[-1][0] == label:
            spans[-1] = (label, spans[-1][1], i + 1)
        else:
            spans.append((label, i, i + 1))
    return spans


def _md(text) -> str:
    """Escape what Markdown would read as emphasis, code or a cell border."""
    return re.sub(r"([\\`*_|])", r"\\\1", str(text))


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "Δ": r"$\Delta$", "≥": r"$\geq$",
        "≤": r"$\leq$", "±": r"$\pm$", "×": r"$\times$", "<": r"$<$", ">": r"$>$", "|": r"\textbar{}"}


def _tex(text) -> str:
    """Escape LaTeX's special characters (and a few symbols pdflatex lacks in text mode)."""
    return re.sub("|".join(map(re.escape, _TEX)), lambda m: _TEX[m.group()], str(text))
