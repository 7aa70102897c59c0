"""Figures: files written at the promised size, and the drawn bars/points equal the input values."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.tables import figures
from protocol.errors import HarnessError

FOOTER = "profile mini (checks the pipeline, not the paper) | 2026-12-02 | commit abc1234 | data e6f64053"
# Hand-picked values per (variant, group, metric); CIs are value -/+ 0.02.
MODALITY_VALUES = {
    ("base", "overall", "HR@10"): 0.41, ("text", "overall", "HR@10"): 0.45,
    ("image", "overall", "HR@10"): 0.39, ("both", "overall", "HR@10"): 0.52,
    ("base", "overall", "NDCG@10"): 0.21, ("text", "overall", "NDCG@10"): 0.25,
    ("image", "overall", "NDCG@10"): 0.19, ("both", "overall", "NDCG@10"): 0.30,
    ("base", "tail", "HR@10"): 0.11, ("text", "tail", "HR@10"): 0.16,
    ("image", "tail", "HR@10"): 0.09, ("both", "tail", "HR@10"): 0.22,
    ("base", "tail", "NDCG@10"): 0.05, ("text", "tail", "NDCG@10"): 0.07,
    ("image", "tail", "NDCG@10"): 0.04, ("both", "tail", "NDCG@10"): 0.12,
}
N = {"overall": 1234, "tail": 87}


def cell(model, dataset, variant, group, metric, value, n):
    value = value if n else math.nan
    return {"table": "figure", "profile": "mini", "model": model, "extractor": "sda", "variant": variant,
            "dataset": dataset, "group": group, "metric": metric, "value": value, "n": n,
            "ci_low": value - 0.02, "ci_high": value + 0.02}


def modality_cells(tail_n: int = N["tail"]) -> pd.DataFrame:
    rows = [cell("slmrec", "toys", v, g, m, value, N[g] if g == "overall" else tail_n)
            for (v, g, m), value in MODALITY_VALUES.items()]
    return pd.DataFrame(rows[::-1])  # reversed: the figure must order variants itself


def bars(ax) -> list[float]:
    """Heights of the drawn bars, left to right."""
    return [round(p.get_height(), 6) for p in sorted(ax.patches, key=lambda p: p.get_x())]


def labels(ax) -> set[str]:
    return {t.get_text() for t in ax.texts}


def check_files(paths, width_in: float, fig) -> None:
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    with Image.open(png) as image:
        assert image.format == "PNG"
        # 300 dpi at the column width: 6.8 in -> 2040 px, 3.3 in -> 990 px.
        assert image.size[0] == {6.8: 2040, 3.3: 990}[width_in]
        assert image.size[1] == fig.get_figheight() * 300  # a whole number of pixels, none cut
    assert not [p for p in png.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers


def test_modalities_files_bars_cis_and_titles(tmp_path):
    cells = modality_cells()
    paths = figures.plot_modalities(cells, FOOTER, tmp_path / "figure3")
    fig = figures.figure_modalities(cells, FOOTER)
    check_files(paths, 6.8, fig)
    axes = fig.axes
    assert len(axes) == 4
    for ax, (metric, group) in zip(axes, [("HR@10", "overall"), ("HR@10", "tail"),
                                          ("NDCG@10", "overall"), ("NDCG@10", "tail")]):
        expected = [MODALITY_VALUES[(v, group, metric)] for v in ("base", "text", "image", "both")]
        assert bars(ax) == expected
        assert [t.get_text() for t in ax.get_xticklabels()] == ["Base", "Text", "Image", "Both"]
        assert ax.get_title() == f"{metric}, {group} (n={N[group]})"
        whiskers = ax.collections[0].get_segments()  # errorbar's vertical lines, bar order
        assert [(round(s[0][1], 6), round(s[1][1], 6)) for s in whiskers] == \
            [(round(v - 0.02, 6), round(v + 0.02, 6)) for v in expected]
    # Value labels keep three significant digits, so the small tail values keep theirs.
    assert labels(axes[0]) == {"0.410", "0.450", "0.390", "0.520"}
    assert labels(axes[3]) == {"0.0500", "0.0700", "0.0400", "0.120"}
    body, foot = fig.subfigs
    assert body.get_suptitle().startswith("SLMRec on Toys")
    assert any(FOOTER in t.get_text().replace("\n", " ") for t in foot.texts)


def test_modalities_empty_tail_and_missing_variant_are_absent(tmp_path):
    cells = modality_cells(tail_n=0)
    cells = cells[~((cells["variant"] == "image") & (cells["group"] == "overall") & (cells["metric"] == "HR@10"))]
    fig = figures.figure_modalities(cells, FOOTER)
    hr_overall, hr_tail, ndcg_overall, ndcg_tail = fig.axes
    # The missing Image bar leaves its slot empty instead of drawing a zero.
    assert bars(hr_overall) == [0.41, 0.45, 0.52]
    assert [round(p.get_x() + p.get_width() / 2) for p in sorted(hr_overall.patches, key=lambda p: p.get_x())] \
        == [0, 1, 3]
    assert len(ndcg_overall.patches) == 4
    for ax in (hr_tail, ndcg_tail):
        assert len(ax.patches) == 0 and "(n=0)" in ax.get_title() and "n=0: no users" in labels(ax)
    check_files(figures.plot_modalities(cells, FOOTER, tmp_path / "f3"), 6.8, fig)


def test_modalities_rejects_ambiguous_cells():
    cells = modality_cells()
    with pytest.raises(HarnessError, match="pairs"):
        figures.figure_modalities(pd.concat([cells, cells.assign(model="vbpr")]), FOOTER)
    with pytest.raises(HarnessError, match="several cells"):
        figures.figure_modalities(pd.concat([cells, cells.head(1)]), FOOTER)
    with pytest.raises(HarnessError, match="lacks columns"):
        figures.figure_modalities(cells.drop(columns=["ci_low"]), FOOTER)


def test_experts_lines_follow_n_e_order_with_bands(tmp_path):
    rows = []
    for model, base in (("sasrec", 0.30), ("vbpr", 0.20)):
        for experts in ("8", "1", "4", "2"):  # scrambled: the figure sorts N_e numerically
            for group in ("overall", "tail"):
                for metric in ("HR@10", "NDCG@10"):
                    value = base + int(experts) / 100 + (0.1 if metric == "HR@10" else 0)
                    n = 0 if (model, group) == ("vbpr", "tail") else N[group]
                    rows.append(cell(model, "beauty", experts, group, metric, value, n))
    cells = pd.DataFrame(rows)
    fig = figures.figure_experts(cells, FOOTER)
    check_files(figures.plot_experts(cells, FOOTER, tmp_path / "figure4"), 6.8, fig)
    hr_overall, _, _, ndcg_tail = fig.axes
    assert [t.get_text() for t in hr_overall.get_xticklabels()] == ["1", "2", "4", "8"]
    sasrec, vbpr = hr_overall.lines
    assert sasrec.get_label() == "SASRec" and vbpr.get_label() == "VBPR"
    np.testing.assert_allclose(sasrec.get_ydata(), [0.41, 0.42, 0.44, 0.48])
    np.testing.assert_allclose(vbpr.get_ydata(), [0.31, 0.32, 0.34, 0.38])
    assert len(hr_overall.collections) == 2  # one CI band per model
    band = hr_overall.collections[0].get_paths()[0].vertices[:, 1]
    assert math.isclose(band.min(), 0.41 - 0.02) and math.isclose(band.max(), 0.48 + 0.02)
    # VBPR has no tail users: its tail line is all gaps, SASRec's is drawn; the title shows both n.
    sasrec_tail, vbpr_tail = ndcg_tail.lines
    np.testing.assert_allclose(sasrec_tail.get_ydata(), [0.31, 0.32, 0.34, 0.38])
    assert np.isnan(vbpr_tail.get_ydata()).all()
    assert ndcg_tail.get_title() == "NDCG@10, tail (n=0\u201387)"


def test_gradients_ours_beside_paper(tmp_path):
    ours = pd.DataFrame([
        {"dataset": "beauty", "adapter": "lora", "module": "q_proj", "cosine": 0.10, "std": 0.40, "batches": 2},
        {"dataset": "beauty", "adapter": "lora", "module": "k_proj", "cosine": -0.02, "std": 0.41, "batches": 2},
        {"dataset": "beauty", "adapter": "moda", "module": "q_proj", "cosine": 0.06, "std": 0.13, "batches": 2},
    ])  # moda/k_proj missing: its bar is absent
    paper = pd.DataFrame({"adapter": ["lora", "lora", "moda", "moda"], "module": ["q_proj", "k_proj"] * 2,
                          "cosine_image_vs_text_gradient": [-0.0955, -0.0705, 0.4422, 0.7096]})
    fig = figures.figure_gradients(ours, paper, FOOTER)
    check_files(figures.plot_gradients(ours, paper, FOOTER, tmp_path / "gradients"), 3.3, fig)
    (ax,) = fig.axes
    ours_label, paper_label = ax.get_legend_handles_labels()[1]
    assert ours_label.startswith("ours, Beauty") and "2 batches" in ours_label and paper_label == "paper"
    ours_bars, paper_bars = ax.containers[0], ax.containers[-1]
    assert [round(b.get_height(), 6) for b in ours_bars] == [0.10, -0.02, 0.06]
    assert [round(b.get_height(), 6) for b in paper_bars] == [-0.0955, -0.0705, 0.4422, 0.7096]
    assert len(ax.patches) == 7
    assert {"0.10", "\u22120.02", "0.44", "0.71"} <= labels(ax)
    assert ax.get_ylim()[0] < -0.41  # room for the whisker of -0.02 - 0.41
    with pytest.raises(HarnessError, match="cosine_image_vs_text_gradient"):
        figures.figure_gradients(ours, paper.rename(columns={"cosine_image_vs_text_gradient": "c"}), FOOTER)


def test_modality_gap_per_extractor_with_no_shared_space(tmp_path):
    nan = math.nan
    diagnostics = pd.DataFrame([
        {"dataset": "beauty", "extractor": "base", "modality_gap": nan, "matched_cosine": nan,
         "random_cosine": nan, "recall@1": nan, "recall@10": nan},
        {"dataset": "beauty", "extractor": "clip", "modality_gap": 0.8, "matched_cosine": 0.3,
         "random_cosine": 0.2, "recall@1": 0.1, "recall@10": 0.4},
        {"dataset": "toys", "extractor": "sda", "modality_gap": 0.2, "matched_cosine": 0.7,
         "random_cosine": -0.1, "recall@1": 0.3, "recall@10": 0.8},
    ])
    fig = figures.figure_modality_gap(diagnostics, FOOTER)
    check_files(figures.plot_modality_gap(diagnostics, FOOTER, tmp_path / "gap"), 6.8, fig)
    gap, cosine, recall = fig.axes
    assert bars(gap) == [0.8, 0.2]
    assert [round(b.get_height(), 6) for b in cosine.containers[0]] == [0.3, 0.7]  # matched
    assert [round(b.get_height(), 6) for b in cosine.containers[1]] == [0.2, -0.1]  # random
    assert [round(b.get_height(), 6) for b in recall.containers[1]] == [0.4, 0.8]  # recall@10
    assert labels(recall) >= {"0.10", "0.40", "no shared space"}
    for ax in (gap, cosine, recall):
        assert "no shared space" in labels(ax)
        # two data sets: each tick names extractor and data set
        assert [t.get_text() for t in ax.get_xticklabels()] == ["base\nBeauty", "clip\nBeauty", "sda\nToys"]


def test_loaders_gather_every_file_and_name_the_command(tmp_path):
    (tmp_path / "diagnostics").mkdir()
    pd.DataFrame({"dataset": ["beauty"], "extractor": ["clip"]}).to_csv(tmp_path / "diagnostics" / "beauty.csv")
    pd.DataFrame({"dataset": ["toys"] * 2, "extractor": ["base", "clip"]}).to_csv(
        tmp_path / "diagnostics" / "toys.csv")
    assert figures.load_diagnostics(tmp_path)[["dataset", "extractor"]].values.tolist() == \
        [["beauty", "clip"], ["toys", "base"], ["toys", "clip"]]
    with pytest.raises(HarnessError, match="harness analyze gradients"):
        figures.load_gradients(tmp_path)
    (tmp_path / "analysis").mkdir()
    pd.DataFrame({"dataset": ["beauty"], "adapter": ["lora"]}).to_csv(tmp_path / "analysis" / "gradients-beauty.csv")
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "analysis" / "params.csv")  # not a gradients file
    assert len(figures.load_gradients(tmp_path)) == 1
