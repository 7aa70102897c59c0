"""Plans, the builder's cell logic, the paper join, Table 2/3 specifics and the modality views."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from extractors.featureset import FeatureSet
from harness.cli import main as cli
from harness.errors import HarnessError
from harness.runner import RunSpec
from harness.tables.build import ablation_deltas, join_paper, paper_values
from harness.tables.plan import load_plan
from harness.tables.report import headline_gains


def test_table1_plan_has_the_papers_192_cells():
    plan = load_plan("table1")
    jobs = plan.jobs()
    assert len(jobs) == 4 * 4 * 3
    assert len(jobs) * len(plan.groups) * len(plan.metrics) == 192
    # data sets outermost: one data set's features and teacher are built before the next
    assert [j.dataset for j in jobs[:16]] == ["beauty"] * 16
    assert {(j.model, j.extractor) for j in jobs[:16]} == {(m, e) for m in ("slmrec", "vbpr", "sasrec", "bert4rec")
                                                          for e in ("base", "clip", "qwenvl", "sda")}
    assert [j.dataset for j in plan.jobs(["toys"])] == ["toys"] * 16


def test_every_shipped_plan_loads():
    for name in ("table1", "table2", "table3", "figure3", "figure4"):
        assert load_plan(name).datasets
    figure4 = load_plan("figure4").jobs()
    assert [dict(j.overrides)["extractor.experts"] for j in figure4] == [1, 2, 4, 8]


def test_plan_mistakes_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: t\ndatasets: [toys]\nmodels: [vbpr]\nextractors: [clp]\n")
    with pytest.raises(HarnessError, match="Did you mean 'clip'"):
        load_plan(str(bad))
    bad.write_text("title: t\ndatasets: [toys]\nmodels: [vbpr]\nextractors: [clip]\nmetrics: [MRR]\n")
    with pytest.raises(HarnessError, match="metric 'MRR' is not one of"):
        load_plan(str(bad))
    bad.write_text("title: t\ndatasets: [toys]\nmodels: [vbpr]\nextractors: [clip]\ncolour: red\n")
    with pytest.raises(HarnessError, match="colour"):
        load_plan(str(bad))
    with pytest.raises(HarnessError, match="Did you mean 'table1'"):
        load_plan("tabel1")
    with pytest.raises(HarnessError, match="has no data set 'sport'"):
        load_plan("table1").jobs(["sport"])


def test_the_papers_numbers_are_joined_not_retyped():
    table1 = paper_values(load_plan("table1"))
    assert len(table1) == 192
    cell = table1[(table1["model"] == "sasrec") & (table1["extractor"] == "sda") & (table1["dataset"] == "beauty")
                  & (table1["group"] == "overall") & (table1["metric"] == "HR@10")]
    assert cell["paper_value"].tolist() == [0.5752]
    # Table 3's file is wide: melted to (variant, group, metric), its deltas named "Δ%"
    table3 = paper_values(load_plan("table3")).set_index(["variant", "group", "metric"])["paper_value"]
    assert table3[("w/o MoDA", "tail", "NDCG@10")] == 0.2969
    assert table3[("w/o CMSA", "overall", "Δ%")] == -6.34


def _cells(values: dict) -> pd.DataFrame:
    """Hand-built cells: {(variant, group, metric): value} for sasrec on beauty."""
    return pd.DataFrame([{"model": "sasrec", "extractor": v, "variant": v, "dataset": "beauty", "group": g,
                          "metric": m, "value": x} for (v, g, m), x in values.items()])


def test_ablation_delta_is_the_mean_relative_change_against_the_full_model():
    cells = _cells({("SDA", "overall", "HR@10"): 0.50, ("SDA", "overall", "NDCG@10"): 0.40,
                    ("w/o MoDA", "overall", "HR@10"): 0.45, ("w/o MoDA", "overall", "NDCG@10"): 0.30})
    out = ablation_deltas(cells, "SDA").set_index(["variant", "metric"])["value"]
    # ((0.45 - 0.5) / 0.5 + (0.30 - 0.40) / 0.40) / 2 = (-10% - 25%) / 2 = -17.5%
    assert out[("w/o MoDA", "Δ%")] == pytest.approx(-17.5)
    assert out[("SDA", "Δ%")] == 0


def test_headline_gain_uses_the_best_baseline_of_each_cell():
    rows = []
    for extractor, ours, hr, paper in (("base", False, 0.20, 0.30), ("clip", False, 0.25, 0.40),
                                       ("sda", True, 0.30, 0.44)):
        rows.append({"model": "vbpr", "extractor": extractor, "dataset": "toys", "group": "overall",
                     "metric": "HR@10", "value": hr, "paper_value": paper, "ours": ours})
    gains = headline_gains(pd.DataFrame(rows))
    # ours 0.30 against the best baseline 0.25: +20%; the paper's 0.44 against 0.40: +10%
    assert gains["overall"] == pytest.approx((20.0, 10.0))


def test_join_paper_leaves_cells_without_a_printed_value_empty():
    cells = _cells({("sda", "overall", "HR@10"): 0.6, ("sda", "tail", "HR@10"): 0.5})
    cells["dataset"] = ["beauty", "mydata"]
    paper = pd.DataFrame([{"model": "sasrec", "extractor": "sda", "dataset": "beauty", "group": "overall",
                           "metric": "HR@10", "paper_value": 0.5752}])
    out = join_paper(cells, paper)
    assert out["paper_value"].iloc[0] == 0.5752 and out["diff"].iloc[0] == pytest.approx(0.6 - 0.5752)
    assert np.isnan(out["paper_value"].iloc[1]) and np.isnan(out["diff"].iloc[1])


def test_a_modality_view_keeps_one_modality_and_a_constant_for_the_other():
    image, text = np.arange(6, dtype=np.float32).reshape(3, 2), -np.arange(9, dtype=np.float32).reshape(3, 3)
    features = FeatureSet(image, text, {"key": "k"})
    only_text = features.view("text")
    assert np.array_equal(only_text.text, text) and np.array_equal(only_text.image, np.ones((3, 1)))
    only_image = features.view("image")
    assert np.array_equal(only_image.image, image) and np.array_equal(only_image.text, np.ones((3, 1)))
    assert features.view("both") is features
    with pytest.raises(HarnessError, match="not one of both, text, image"):
        features.view("audio")


def test_a_modality_view_is_part_of_the_run_key_and_checked_up_front():
    both = RunSpec.resolve("slmrec", "toys", "sda")
    text = RunSpec.resolve("slmrec", "toys", "sda", overrides={"extractor.modalities": "text"})
    assert both.key("d", "f") != text.key("d", "f")
    assert both.key("d", "f") == RunSpec.resolve("slmrec", "toys", "sda", overrides={
        "extractor.modalities": "both"}).key("d", "f")
    with pytest.raises(HarnessError, match="extractor.modalities=sound"):
        RunSpec.resolve("slmrec", "toys", "sda", overrides={"extractor.modalities": "sound"})


def test_table_command_refuses_overrides(capsys):
    assert cli(["table", "table1", "lr=0.1"]) == 2
    assert "table takes no key=value overrides" in capsys.readouterr().err


PLAN = """title: "resume check"
datasets: [{datasets}]
rows:
  - {{model: vbpr, extractor: clip, overrides: {{grid.reg_weight: [0.1, 0.001]}}}}
  - {{model: vbpr, extractor: qwenvl, overrides: {{grid.reg_weight: [0.1, 0.001]}}}}
  - {{model: sasrec, extractor: clip, overrides: {{grid.alpha: [0.1], teacher_epochs: 1, max_len: 20}}}}
  - {{model: sasrec, extractor: qwenvl, overrides: {{grid.alpha: [0.1], teacher_epochs: 1, max_len: 20}}}}
ours: qwenvl
overrides: {{train.max_epochs: 1}}
layout: {{rows: [model, extractor], columns: [dataset, group, metric]}}
"""


def _table(plan, results, artifacts, workers=1):
    import os
    import subprocess
    import sys

    env = os.environ | {"HARNESS_RESULTS": str(results), "HARNESS_ARTIFACTS": str(artifacts)}
    return subprocess.Popen([sys.executable, "-m", "harness", "table", str(plan), "--workers", str(workers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_a_killed_build_resumes_without_rerunning_and_gives_the_same_table(tmp_path, capsys):
    import os
    import signal
    import time

    from test_extract_end_to_end import _subset_source

    from harness.data.prepare import load_dataset

    paths = []
    for users in (40, 30):
        folder = tmp_path / f"source{users}"
        folder.mkdir()
        paths.append(str(load_dataset("beauty", "mini", {"path": str(_subset_source(folder, users))}).path))
    plan = tmp_path / "resume.yaml"
    plan.write_text(PLAN.format(datasets=", ".join(paths)))
    artifacts = os.environ["HARNESS_ARTIFACTS"]

    killed = tmp_path / "killed"
    process = _table(plan, killed, artifacts)
    runs = killed / "runs"
    while len(list(runs.glob("*/manifest.json"))) < 2 and process.poll() is None:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 in the middle: two runs of twelve finished
    process.wait()
    finished = {p: p.stat().st_mtime_ns for p in runs.glob("*/manifest.json")}
    assert 2 <= len(finished) < 12 and not (killed / "tables" / "resume.csv").exists()

    assert _table(plan, killed, artifacts).wait() == 0
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # nothing finished ran again
    assert len(list(runs.glob("*/manifest.json"))) == 12

    # uninterrupted, with two workers: both data sets' inputs side by side, then all runs in a pool
    whole = tmp_path / "whole"
    assert _table(plan, whole, tmp_path / "fresh-artifacts", workers=2).wait() == 0
    resumed = pd.read_csv(killed / "tables" / "resume.csv")
    pd.testing.assert_frame_equal(resumed, pd.read_csv(whole / "tables" / "resume.csv"))
    assert len(resumed) == 2 * 4 * 2 * 2 and resumed["value"].notna().all() and resumed["n"].gt(0).all()
    markdown = (killed / "tables" / "resume.md").read_text()
    assert "vbpr" in markdown and "resume check" in markdown

    # `results` finds every run behind the table, and the table files
    os.environ["HARNESS_RESULTS"], saved = str(killed), os.environ["HARNESS_RESULTS"]
    try:
        assert cli(["results", "--model", "vbpr"]) == 0
    finally:
        os.environ["HARNESS_RESULTS"] = saved
    listed = capsys.readouterr().out
    vbpr_keys = set(resumed.loc[resumed["model"] == "vbpr", "run_key"])
    assert "runs under" in listed and all(key in listed for key in vbpr_keys)
    assert "resume.csv" in listed and "resume.tex" in listed


def test_table2_puts_our_statistics_beside_the_papers(capsys):
    from harness.config import results_dir

    assert cli(["table", "table2"]) == 0
    table = pd.read_csv(results_dir() / "tables" / "table2.csv").set_index(["dataset", "source"])
    # the 5-core counts of ../shared/data/README.md, and the paper's Table 2 as printed
    assert table.loc[("sports-5core", "5-core (../shared/data)"), ["users", "items", "interactions"]].tolist() == [
        35598, 18357, 296337]
    assert table.loc[("beauty-5core", "5-core (../shared/data)"), "users"] == 22363
    assert table.loc[("beauty", "paper (Table 2)"), ["users", "items", "interactions"]].tolist() == [50498, 57019, 391956]
    assert table.loc[("toys", "mini profile"), "users"] == 2000
    assert len(table) == 6 + 3
    markdown = (results_dir() / "tables" / "table2.md").read_text()
    assert "paper (Table 2)" in markdown and "35,598" in markdown and "Profile mini" in markdown
    assert "\\toprule" in (results_dir() / "tables" / "table2.tex").read_text()
