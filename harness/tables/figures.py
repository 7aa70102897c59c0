"""The paper's figures as PNG (300 dpi) and PDF: Figures 3 and 4, gradient conflict, modality gap.

Each `figure_*` builds a matplotlib Figure from tidy data (the "cells" table, or the CSVs of
`analyze gradients` and `diagnose`); each `plot_*` builds it and writes <stem>.png and
<stem>.pdf atomically. Figures are built without pyplot (no global state, no backend switch)
and drawn by Agg. Sizes are fixed, never "tight", so a figure keeps its width in a column.
Every figure carries the caller's provenance `footer` under its panels.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from protocol.errors import HarnessError
from protocol.fileio import atomic_path

DPI = 300
SINGLE, DOUBLE = 3.3, 6.8  # column widths in inches
FOOTER_PT = 5.5
STYLE = {"font.family": "serif", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
         "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "axes.linewidth": 0.6,
         "xtick.major.width": 0.6, "ytick.major.width": 0.6, "lines.linewidth": 1.0,
         "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42,
         "mathtext.fontset": "dejavuserif"}
# Okabe-Ito: distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
METRICS = ("HR@10", "NDCG@10")
GROUPS = ("overall", "tail")
MODALITIES = {"base": "Base", "text": "Text", "image": "Image", "both": "Both"}
MODALITY_COLORS = {"base": "0.6", "text": PALETTE[0], "image": PALETTE[1], "both": PALETTE[2]}
CELL_COLUMNS = {"model", "dataset", "variant", "group", "metric", "value", "n", "ci_low", "ci_high"}
GRADIENT_COLUMNS = {"dataset", "adapter", "module", "cosine", "std"}
PAPER_GRADIENT_COLUMNS = {"adapter", "module", "cosine_image_vs_text_gradient"}
DIAGNOSTIC_COLUMNS = {"dataset", "extractor", "modality_gap", "matched_cosine", "random_cosine",
                      "recall@1", "recall@10"}
ADAPTERS = {"lora": "LoRA", "moda": "MoDA"}
MODULES = ("q_proj", "k_proj")  # as extractors.sda.gradients.MODULES, which imports torch and the VLM
NAMES = {"slmrec": "SLMRec", "vbpr": "VBPR", "sasrec": "SASRec", "bert4rec": "BERT4Rec",
         "beauty": "Beauty", "toys": "Toys", "sports": "Sports"}


def _name(key: str) -> str:
    return NAMES.get(key, key)


def _require(frame: pd.DataFrame, columns: set[str], what: str) -> None:
    missing = sorted(columns - set(frame.columns))
    if missing:
        raise HarnessError(f"{what} lacks columns {missing}; pass the table its loader or builder writes.")


def _figure(width: float, body_height: float, footer: str):
    """(figure, body): `body` is a constrained-layout subfigure above a strip holding `footer`.

    The footer is wrapped to the width and the figure grows by its height, so the body keeps its
    size and nothing drawn in it (titles, legends outside the axes) can run into the footer.
    """
    chars = int(width * 72 / (FOOTER_PT * 0.62))  # measured: DejaVu Serif averages ~0.6 em a character
    lines = textwrap.wrap(footer, chars) or [""]
    # Whole pixels at DPI: savefig truncates, so a fractional height would lose a pixel row.
    strip = math.ceil((len(lines) * 1.25 * FOOTER_PT + 4) / 72 * DPI) / DPI
    fig = Figure(figsize=(width, body_height + strip), dpi=DPI, layout="constrained")
    body, foot = fig.subfigures(2, 1, height_ratios=(body_height, strip), hspace=0)
    foot.text(0.005, 0.5, "\n".join(lines), fontsize=FOOTER_PT, color="0.35", ha="left", va="center",
              linespacing=1.25)
    return fig, body


def save(fig: Figure, out: str | Path) -> tuple[Path, Path]:
    """Write `fig` to <out>.png (300 dpi) and <out>.pdf, each under its final name only when complete."""
    out = Path(out)
    paths = out.with_name(out.name + ".png"), out.with_name(out.name + ".pdf")
    with rc_context(STYLE):
        for path in paths:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=path.suffix[1:], dpi=DPI)
    return paths


def _n_label(n: pd.Series) -> str:
    n = n.dropna().astype(int)
    if n.empty:
        return "n=0"
    low, high = n.min(), n.max()
    return f"n={low}" if low == high else f"n={low}\u2013{high}"


def _absent(ax, text: str = "n=0: no users") -> None:
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _bars(ax, x, values, low, high, width, color, label=None, fmt: str = "{:#.3g}",
          upright: bool = False) -> list[float]:
    """Bars with whiskers from low to high (95% CI) and value labels; NaN values draw no bar.

    A missing value is absent, never a zero-height bar. `fmt` keeps significant digits, so small
    values (recall@1 near 0.0003) still read; `upright` turns labels 90 degrees for bars too narrow
    for them. Returns where the labels sit (the whisker's end, or the bar's top) for the limits.
    """
    x, values, low, high = (np.asarray(v, dtype=float) for v in (x, values, low, high))
    keep = np.isfinite(values)
    colors = [c for c, k in zip(np.broadcast_to(np.asarray(color, dtype=object), values.shape), keep) if k]
    x, values, low, high = x[keep], values[keep], low[keep], high[keep]
    bars = ax.bar(x, values, width, color=colors, label=label, edgecolor="white", linewidth=0.4)
    has_ci = np.isfinite(low) & np.isfinite(high)
    if has_ci.any():
        err = np.vstack([values - low, high - values])[:, has_ci]
        ax.errorbar(x[has_ci], values[has_ci], yerr=err, fmt="none", ecolor="0.15", elinewidth=0.6,
                    capsize=1.5, capthick=0.6)
    tops = np.where(has_ci, np.where(values >= 0, high, low), values)
    for xi, value, top in zip(x, values, tops):
        up = value >= 0
        ax.annotate(fmt.format(value).replace("-", "\u2212"), (xi, top), xytext=(0, 1.5 if up else -1.5),
                    textcoords="offset points", ha="center", va="bottom" if up else "top", fontsize=5.5,
                    rotation=90 if upright else 0)
    return list(tops)


def _limits(ax, tops: list[float], pad: float = 0.22) -> None:
    """Y limits from 0 (or below, for negative bars) with room (a share of the range) for the labels."""
    tops = np.asarray(tops, dtype=float)
    tops = tops[np.isfinite(tops)]
    low, high = min(tops.min(initial=0.0), 0.0), max(tops.max(initial=0.0), 0.0)
    pad = pad * ((high - low) or 1.0)
    ax.set_ylim(low - pad if low < 0 else 0.0, high + pad)
    if low < 0:
        ax.axhline(0, color="0.3", linewidth=0.5)


def _categories(ax, labels: list[str]) -> None:
    """One tick per category, limits fixed so an absent bar still keeps its slot."""
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _legend_above(ax, title: str, ncols: int | None = None) -> None:
    """Legend in rows between the axes and its title, where it never covers data."""
    entries = len(ax.get_legend_handles_labels()[1])
    ncols = ncols or entries
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=ncols, frameon=False, borderaxespad=0.2,
              handlelength=1.2, columnspacing=1.0)
    ax.set_title(title, pad=3 + 10 * -(-entries // ncols))  # a legend row is ~10 pt at 7 pt type


def _cells(cells: pd.DataFrame, variants, what: str) -> pd.DataFrame:
    _require(cells, CELL_COLUMNS, what)
    rows = cells[cells["variant"].astype(str).isin(variants)]
    if rows.empty:
        raise HarnessError(f"{what}: no cells with variant in {sorted(variants)}; build that plan's cells first.")
    dup = rows.duplicated(["model", "dataset", "variant", "group", "metric"])
    if dup.any():
        first = rows[dup].iloc[0]
        raise HarnessError(f"{what}: several cells for {first['model']}/{first['dataset']}/variant "
                           f"{first['variant']}/{first['group']}/{first['metric']}; pass one plan's cells.")
    return rows


def figure_modalities(cells: pd.DataFrame, footer: str) -> Figure:
    """Figure 3: Base vs SDA from text only / image only / both, one panel per metric x group."""
    rows = _cells(cells, MODALITIES, "plot_modalities")
    pairs = rows[["model", "dataset"]].drop_duplicates()
    if len(pairs) != 1:
        raise HarnessError(f"plot_modalities: cells hold {len(pairs)} (model, dataset) pairs; "
                           f"pass those of one, e.g. cells[cells.model == 'slmrec'].")
    model, dataset = pairs.iloc[0]
    variants = [v for v in MODALITIES if v in set(rows["variant"])]
    with rc_context(STYLE):
        fig, body = _figure(DOUBLE, 1.9, footer)
        axes = body.subplots(1, len(METRICS) * len(GROUPS))
        for ax, (metric, group) in zip(axes, [(m, g) for m in METRICS for g in GROUPS]):
            panel = rows[(rows["metric"] == metric) & (rows["group"] == group)].set_index("variant")
            panel = panel.reindex(variants)
            ax.set_title(f"{metric}, {group} ({_n_label(panel['n'])})")
            x = np.arange(len(variants))
            tops = _bars(ax, x, panel["value"], panel["ci_low"], panel["ci_high"], 0.7,
                         [MODALITY_COLORS[v] for v in variants])
            _categories(ax, [MODALITIES[v] for v in variants])
            _limits(ax, tops)
            if not np.isfinite(panel["value"].to_numpy(dtype=float)).any():
                _absent(ax)
        axes[0].set_ylabel("test value (95% CI)")
        body.suptitle(f"{_name(model)} on {_name(dataset)}: Base features vs SDA features from "
                     f"text only, image only and both modalities")
    return fig


def plot_modalities(cells: pd.DataFrame, footer: str, out: str | Path) -> tuple[Path, Path]:
    return save(figure_modalities(cells, footer), out)


def figure_experts(cells: pd.DataFrame, footer: str) -> Figure:
    """Figure 4: metric against the number of experts N_e, a line (with CI band) per model."""
    rows = _cells(cells, ("1", "2", "4", "8"), "plot_experts")
    rows = rows.assign(variant=rows["variant"].astype(str))
    datasets = rows["dataset"].unique()
    if len(datasets) != 1:
        raise HarnessError(f"plot_experts: cells hold data sets {sorted(datasets)}; pass those of one.")
    experts = sorted(rows["variant"].unique(), key=int)
    models = list(dict.fromkeys(rows["model"]))
    x = np.arange(len(experts))  # evenly spaced: N_e doubles from tick to tick
    with rc_context(STYLE):
        fig, body = _figure(DOUBLE, 1.9, footer)
        axes = body.subplots(1, len(METRICS) * len(GROUPS))
        for ax, (metric, group) in zip(axes, [(m, g) for m in METRICS for g in GROUPS]):
            panel = rows[(rows["metric"] == metric) & (rows["group"] == group)]
            ax.set_title(f"{metric}, {group} ({_n_label(panel['n'])})")
            for k, model in enumerate(models):
                line = panel[panel["model"] == model].set_index("variant").reindex(experts)
                colour = PALETTE[k % len(PALETTE)]
                ax.fill_between(x, line["ci_low"].to_numpy(dtype=float), line["ci_high"].to_numpy(dtype=float),
                                color=colour, alpha=0.18, linewidth=0)
                ax.plot(x, line["value"].to_numpy(dtype=float), marker=MARKERS[k % len(MARKERS)],
                        markersize=3.5, color=colour, label=_name(model))
            ax.set_xticks(x, experts)
            ax.set_xlabel("experts $N_e$")
            ax.set_xlim(-0.3, len(experts) - 0.7)
            if not np.isfinite(panel["value"].to_numpy(dtype=float)).any():
                _absent(ax)
        axes[0].set_ylabel("test value (95% CI band)")
        body.suptitle(f"Number of MoDA experts on {_name(datasets[0])}")
        body.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(models),
                   frameon=False)
    return fig


def plot_experts(cells: pd.DataFrame, footer: str, out: str | Path) -> tuple[Path, Path]:
    return save(figure_experts(cells, footer), out)


def figure_gradients(ours: pd.DataFrame, paper: pd.DataFrame, footer: str) -> Figure:
    """Cosine of image-only vs text-only gradients, LoRA vs MoDA on q_proj/k_proj: ours beside the paper's."""
    _require(ours, GRADIENT_COLUMNS, "plot_gradients: ours (results/analysis/gradients-<dataset>.csv)")
    _require(paper, PAPER_GRADIENT_COLUMNS, "plot_gradients: paper (shared/paper/gradients.csv)")
    keys = [(a, m) for a in ADAPTERS for m in MODULES]
    batches = "/".join(str(b) for b in ours["batches"].unique()) if "batches" in ours else "?"
    series = [(f"ours, {_name(d)} (\u00b1 s.d., {batches} batches)",
               ours[ours["dataset"] == d].set_index(["adapter", "module"]))
              for d in dict.fromkeys(ours["dataset"])]
    series.append(("paper", paper.set_index(["adapter", "module"]).rename(
        columns={"cosine_image_vs_text_gradient": "cosine"})))
    width = 0.8 / len(series)
    x = np.arange(len(keys))
    with rc_context(STYLE):
        fig, body = _figure(SINGLE, 2.1, footer)
        ax = body.subplots()
        tops = []
        for k, (label, frame) in enumerate(series):
            frame = frame.reindex(keys)
            values = frame["cosine"].to_numpy(dtype=float)
            std = frame["std"].to_numpy(dtype=float) if "std" in frame else np.full(len(keys), np.nan)
            tops += _bars(ax, x + (k - (len(series) - 1) / 2) * width, values, values - std, values + std,
                          width, "0.6" if label == "paper" else PALETTE[k % len(PALETTE)], label, "{:.2f}")
        _categories(ax, [f"{ADAPTERS[a]}\n{m}" for a, m in keys])
        ax.set_ylabel("cosine(image grad, text grad)")
        _limits(ax, tops)
        _legend_above(ax, "Gradient conflict, image vs text", 2 if len(series) == 2 else 1)
    return fig


def plot_gradients(ours: pd.DataFrame, paper: pd.DataFrame, footer: str, out: str | Path) -> tuple[Path, Path]:
    return save(figure_gradients(ours, paper, footer), out)


def figure_modality_gap(diagnostics: pd.DataFrame, footer: str) -> Figure:
    """Per extractor: modality gap, matched vs random cosine, image->text recall@1/@10."""
    _require(diagnostics, DIAGNOSTIC_COLUMNS, "plot_modality_gap (results/diagnostics/<dataset>.csv)")
    several = diagnostics["dataset"].nunique() > 1
    labels = [f"{e}\n{_name(d)}" if several else e
              for d, e in zip(diagnostics["dataset"], diagnostics["extractor"])]
    panels = [("Modality gap (centroid distance)", [("modality_gap", "gap")]),
              ("Image-text cosine", [("matched_cosine", "matched"), ("random_cosine", "random")]),
              ("Image$\\to$text recall", [("recall@1", "recall@1"), ("recall@10", "recall@10")])]
    x = np.arange(len(diagnostics))
    with rc_context(STYLE):
        fig, body = _figure(DOUBLE, 2.0, footer)
        axes = body.subplots(1, len(panels))
        for ax, (title, columns) in zip(axes, panels):
            width = 0.8 / len(columns)
            tops = []
            for k, (column, label) in enumerate(columns):
                values = diagnostics[column].to_numpy(dtype=float)
                tops += _bars(ax, x + (k - (len(columns) - 1) / 2) * width, values, np.full_like(values, np.nan),
                              np.full_like(values, np.nan), width, PALETTE[k], label if len(columns) > 1 else None,
                              "{:#.2g}", upright=len(columns) > 1)
            missing = diagnostics[[c for c, _ in columns]].isna().all(axis=1).to_numpy()
            for i in np.flatnonzero(missing):  # base: CNN and MiniLM features share no space
                ax.text(x[i], 0.03, "no shared space", transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", rotation=90, fontsize=5.5, color="0.4",
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
            _limits(ax, tops, 0.4 if len(columns) > 1 else 0.22)
            _categories(ax, labels)
            if len(columns) > 1:
                _legend_above(ax, title)
            else:
                ax.set_title(title, pad=13)  # level with the neighbours' titles above their legends
        body.suptitle("Alignment of image and text features per extractor")
    return fig


def plot_modality_gap(diagnostics: pd.DataFrame, footer: str, out: str | Path) -> tuple[Path, Path]:
    return save(figure_modality_gap(diagnostics, footer), out)


def _gather(folder: Path, pattern: str, command: str) -> pd.DataFrame:
    files = sorted(folder.glob(pattern))
    if not files:
        raise HarnessError(f"no {folder / pattern}; run `python -m harness {command}` first.")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def load_diagnostics(results_root: str | Path) -> pd.DataFrame:
    """All rows of <results_root>/diagnostics/*.csv (one file per data set)."""
    return _gather(Path(results_root) / "diagnostics", "*.csv", "diagnose --dataset D -e base -e clip")


def load_gradients(results_root: str | Path) -> pd.DataFrame:
    """All rows of <results_root>/analysis/gradients-*.csv (one file per data set)."""
    return _gather(Path(results_root) / "analysis", "gradients-*.csv", "analyze gradients --dataset D")
