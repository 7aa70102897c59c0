"""Plans, the builder's cell logic, the paper join, Table 2/3 specifics and the modality views."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.cli import main as cli
from harness.runner import RunSpec
from harness.tables.build import ablation_deltas, join_paper, paper_values
from harness.tables.plan import load_plan
from harness.tables.report import headline_gains
from protocol.errors import HarnessError
from protocol.featureset import FeatureSet


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


def test_ablation_delta_compares_each_row_with_the_reference_of_its_own_data_set_and_model():
    values = {("SDA", "overall", "HR@10"): 0.50, ("SDA", "overall", "NDCG@10"): 0.40,
              ("w/o MoDA", "overall", "HR@10"): 0.45, ("w/o MoDA", "overall", "NDCG@10"): 0.30}
    beauty = _cells(values)
    toys = _cells({k: v / 2 for k, v in values.items()}).assign(dataset="toys")
    toys.loc[toys["variant"] == "w/o MoDA", "value"] = [0.30, 0.10]  # toys SDA: 0.25, 0.20
    vbpr = _cells(values).assign(model="vbpr")
    vbpr.loc[vbpr["variant"] == "SDA", "value"] = [0.90, 0.60]
    out = ablation_deltas(pd.concat([beauty, toys, vbpr], ignore_index=True), "SDA")
    delta = out[out["metric"] == "Δ%"].set_index(["model", "dataset", "variant"])["value"]
    assert len(delta) == 6
    assert delta[("sasrec", "beauty", "w/o MoDA")] == pytest.approx(-17.5)
    # toys: (0.30 - 0.25) / 0.25 = +20 %, (0.10 - 0.20) / 0.20 = -50 % -> -15 %
    assert delta[("sasrec", "toys", "w/o MoDA")] == pytest.approx(-15.0)
    # vbpr: (0.45 - 0.90) / 0.90 = -50 %, (0.30 - 0.60) / 0.60 = -50 % -> -50 %
    assert delta[("vbpr", "beauty", "w/o MoDA")] == pytest.approx(-50.0)
    assert (delta.xs("SDA", level="variant") == 0).all()


def test_headline_gain_uses_the_best_baseline_of_each_cell():
    rows = []
    for extractor, ours, hr, paper in (("base", False, 0.20, 0.30), ("clip", False, 0.25, 0.40),
                                       ("sda", True, 0.30, 0.44)):
        rows.append({"model": "vbpr", "extractor": extractor, "dataset": "toys", "group": "overall",
                     "metric": "HR@10", "value": hr, "paper_value": paper, "ours": ours, "test_status": ""})
    gains = headline_gains(pd.DataFrame(rows))
    # ours 0.30 against the best baseline 0.25: +20%; the paper's 0.44 against 0.40: +10%
    assert gains["overall"]["ours"] == pytest.approx((20.0, 1))
    assert gains["overall"]["paper"] == pytest.approx((10.0, 1)) == gains["overall"]["paper_same"]


def test_the_papers_mark_is_best_in_column_and_kept_apart_from_ours():
    paper = paper_values(load_plan("table1"))
    best = paper.groupby(["model", "dataset", "group", "metric"])["paper_value"].transform("max")
    assert paper["paper_marked"].sum() == 48 and (paper["paper_marked"] == (paper["paper_value"] == best)).all()
    # 0.4071 against 0.4070 carries the paper's mark all the same
    assert paper.loc[paper["paper_value"] == 0.4071, "paper_marked"].all()
    assert paper.loc[paper["paper_marked"], "extractor"].isin(["sda", "clip"]).all()
    cells = _cells({("sda", "overall", "HR@10"): 0.6})
    joined = join_paper(cells.assign(extractor="sda"), paper)
    assert joined["paper_marked"].tolist() == [True] and "marked_significant" not in joined


# --- a synthetic plan built without training: crafted per-user hits (the first k of n users hit) ---

HITS = {  # (data set, model, group) -> (users, hits of base, clip, sda)
    ("a", "vbpr", "overall"): (40, 5, 10, 30), ("a", "vbpr", "tail"): (12, 3, 2, 8),
    ("a", "sasrec", "overall"): (40, 20, 15, 26), ("a", "sasrec", "tail"): (12, 2, 2, 2),
    ("b", "vbpr", "overall"): (40, 10, 12, 32), ("b", "vbpr", "tail"): (12, 4, 1, 11),
    ("b", "sasrec", "overall"): (40, 10, 10, 14), ("b", "sasrec", "tail"): (12, 1, 0, 1),
}
EXTRACTORS = ("base", "clip", "sda")


def _synthetic_plan():
    from harness.tables.plan import Plan

    rows = [{"model": m, "extractor": e, "variant": e} for m in ("vbpr", "sasrec") for e in EXTRACTORS]
    return Plan(name="syn", title="Synthetic", datasets=["a", "b"], rows=rows, ours="sda", metrics=["HR@10"],
                layout={"rows": ["model", "extractor"], "columns": ["dataset", "group", "metric"]}, headline=True)


def _per_user(key: str, group: str, metric: str) -> pd.Series:
    model, extractor, dataset = key.split("/")
    n, *hits = HITS[(dataset, model, group)]
    users = pd.Series((np.arange(n) < hits[EXTRACTORS.index(extractor)]) * 1.0, index=[f"u{i:02d}" for i in range(n)])
    return users.iloc[::-1] if extractor == "clip" else users  # listed in another order: paired by id


def _built(plan, datasets=None, failed=()):
    from harness.tables.build import table_cells

    jobs = plan.jobs(datasets)
    winners = {j: f"{j.model}/{j.extractor}/{j.dataset}" for j in jobs
               if (j.model, j.extractor, j.dataset) not in failed}
    cells = table_cells(plan, "mini", jobs, winners, lambda key: {"data_hash": "h-" + key[-1], "feature_key": key},
                        _per_user)
    return cells.set_index(["dataset", "model", "extractor", "group"]).sort_index()


def test_a_partial_build_stars_what_the_full_build_stars():
    from harness.tables.report import notes_for

    plan = _synthetic_plan()
    full = _built(plan)
    # By hand (t-tests of k of n differences +1, the rest 0; Holm over the plan's 8 comparisons):
    # b/vbpr overall 20 of 40 p 2.4e-7, a/vbpr overall 20 of 40, b/vbpr tail 7 of 12 p 0.0024 (x6 = 0.014),
    # a/sasrec overall 6 of 40 p 0.0124 (x5 = 0.062: no star from here on), a/vbpr tail 5 of 12 p 0.017,
    # b/sasrec overall 4 of 40 p 0.044; both sasrec tails: no difference (p = 1).
    starred = {("a", "vbpr", "overall"), ("b", "vbpr", "overall"), ("b", "vbpr", "tail")}
    ours = full.xs("sda", level="extractor")
    assert set(ours.index[ours["marked"]].map(lambda i: (i[0], i[1], i[2]))) == starred
    assert (ours["holm_m"] == 8).all()
    for datasets in (["b"], ["a"]):
        part = _built(plan, datasets).xs("sda", level="extractor")
        same = full.xs("sda", level="extractor").loc[part.index]
        decided = ~part["test_status"].str.startswith("pending")
        assert (part["marked"][decided] == same["marked"][decided]).all()
        assert not (part["marked"] & ~same["marked"]).any()
        assert (part["holm_m"] == 8).all()
    # b alone decides all of its cells as the full build does; a alone leaves two pending (best case
    # with b's 4 tests at p = 0: a/sasrec overall 0.0124 x3 = 0.037), which the full build leaves unstarred.
    b = _built(plan, ["b"]).xs("sda", level="extractor")
    assert not b["test_status"].str.startswith("pending").any()
    a = _built(plan, ["a"]).xs("sda", level="extractor")
    assert sorted(a.index[a["test_status"].str.startswith("pending")]) == [("a", "sasrec", "overall"),
                                                                          ("a", "vbpr", "tail")]
    notes = " ".join(notes_for(plan, a.reset_index().assign(extractor="sda"), ["a"]))
    assert "family of 8 comparisons" in notes and "Partial build: data sets a of a, b" in notes
    assert "2 cell(s) are pending" in notes


def test_a_failed_baseline_stars_nothing_in_its_comparison_and_leaves_the_gain():
    from harness.tables.report import headline_gains, notes_for

    plan = _synthetic_plan()
    # a/vbpr clip fails: the best finished baseline would be base (5 of 40) and sda's a/vbpr gain +500 %
    cells = _built(plan, failed={("vbpr", "clip", "a")})
    vbpr_a = cells.loc[("a", "vbpr", "sda")]
    assert not vbpr_a["marked"].any() and vbpr_a["p_holm"].isna().all()
    assert (vbpr_a["test_status"] == "incomplete: baseline clip failed").all()
    assert cells.loc[("b", "vbpr", "sda", "overall"), "marked"]  # the others keep theirs
    flat = cells.reset_index()
    # paper values: the same as ours, except in the failed comparison's unit
    flat["paper_value"] = flat["value"].where(flat["run_key"] != "", 0.2)
    gains = headline_gains(flat)["overall"]
    # ours over the 3 complete overall cells: b/vbpr 0.8 vs 0.3 = +166.67 %, a/sasrec 0.65 vs 0.5 = +30 %,
    # b/sasrec 0.35 vs 0.25 = +40 %: mean 78.89 %. The paper side over the same 3 cells, and over all 4
    # with a/vbpr 0.75 vs its clip 0.2: +275 % -> (166.67 + 30 + 40 + 275) / 4 = 127.92 %.
    assert gains["ours"] == pytest.approx((78.888889, 3)) and gains["paper_same"] == pytest.approx((78.888889, 3))
    assert gains["paper"] == pytest.approx((127.916667, 4))
    notes = " ".join(notes_for(plan, flat, ["a", "b"]))
    assert "overall: +78.89% over 3 complete cell(s) (the paper's values give +78.89% over the same 3; " \
           "+127.92% over all its 4)" in notes
    assert "2 incomplete" in notes


def test_output_names_keep_profiles_and_partial_builds_apart(tmp_path):
    from harness.tables.build import Built
    from harness.tables.report import write_table

    plan = load_plan("table1")
    assert plan.output_name("mini") == plan.output_name("mini", ["toys", "beauty", "sports"]) == "table1"
    assert plan.output_name("paper") == "table1.paper"
    assert plan.output_name("mini", ["toys"]) == "table1.partial-toys"
    assert plan.output_name("paper", ["toys", "beauty"]) == "table1.paper.partial-beauty-toys"
    syn = _synthetic_plan()
    full = write_table(syn, Built(_built(syn).reset_index(), name=syn.output_name("mini"), datasets=["a", "b"]),
                       "mini", tmp_path)
    before = {p: p.read_bytes() for p in full}
    part = write_table(syn, Built(_built(syn, ["a"]).reset_index(), name=syn.output_name("mini", ["a"]),
                                  datasets=["a"]), "mini", tmp_path)
    assert [p.name for p in part] == ["syn.partial-a.csv", "syn.partial-a.md", "syn.partial-a.tex"]
    assert {p: p.read_bytes() for p in full} == before
    assert "Partial build: a only." in part[1].read_text()
    csv = pd.read_csv(part[0])
    assert {"t_stat", "paper_marked", "marked", "test_status", "holm_m"} <= set(csv.columns)


def test_the_table_command_writes_partial_and_other_profile_tables_beside_the_full_one(tmp_path, monkeypatch, capsys):
    # every job fails at once (no such data set): no training, yet the real command path names the
    # files (the check of the inputs, which refuses such a plan before any work, is left out here)
    plan = tmp_path / "syn.yaml"
    plan.write_text("title: naming\ndatasets: [nosuch1, nosuch2]\nmodels: [vbpr]\nextractors: [clip, sda]\nours: sda\n")
    monkeypatch.setenv("HARNESS_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr("harness.commands.table.check_inputs", lambda *args: None)
    tables = tmp_path / "results" / "tables"
    assert cli(["table", str(plan)]) == 1
    full = {p.name: p.read_bytes() for p in tables.glob("syn.*") if p.suffix != ".log"}
    assert sorted(full) == ["syn.csv", "syn.md", "syn.tex"]
    assert cli(["table", str(plan), "--datasets", "nosuch2"]) == 1
    assert cli(["table", str(plan), "--profile", "paper"]) == 1
    assert {p.name: p.read_bytes() for p in tables.glob("syn.*") if p.name in full} == full
    names = sorted(p.name for p in tables.iterdir())
    assert names == sorted(["syn.csv", "syn.md", "syn.tex", "syn.log", "syn.partial-nosuch2.csv",
                            "syn.partial-nosuch2.md", "syn.partial-nosuch2.tex", "syn.partial-nosuch2.log",
                            "syn.paper.csv", "syn.paper.md", "syn.paper.tex", "syn.paper.log"])
    assert "Partial build: nosuch2 only." in (tables / "syn.partial-nosuch2.md").read_text()
    assert "Profile paper" in (tables / "syn.paper.md").read_text()
    assert "written: " + str(tables / "syn.paper.tex") in capsys.readouterr().out


def test_per_user_values_reach_the_tests_keyed_by_user_id(tmp_path):
    from harness.tables.build import PerUser
    from protocol.evaluate import Evaluation
    from protocol.store import ResultStore

    store = ResultStore(tmp_path)
    for key, users, ranks, tail in (("a", [30, 10, 20, 40], [0, 50, 3, 12], [True, False, True, False]),
                                    ("b", [40, 30, 20, 10], [12, 0, 3, 50], [False, True, True, False])):
        ev = Evaluation.from_ranks(np.array(ranks), np.array(tail), users=np.array(users))
        store.write_run(key, {"run_key": key}, {("test", "sampled"): ev}, {"identity": {"data_hash": "h"}})
    per_user = PerUser(store)
    # the same (user, rank) pairs written in another row order: equal once keyed by user id
    assert per_user("a", "overall", "HR@10").to_dict() == {10: 0.0, 20: 1.0, 30: 1.0, 40: 0.0}
    pd.testing.assert_series_equal(per_user("a", "overall", "NDCG@10"), per_user("b", "overall", "NDCG@10"))
    assert per_user("a", "tail", "HR@10").to_dict() == per_user("b", "tail", "HR@10").to_dict() == {20: 1.0, 30: 1.0}


def test_p_values_that_underflow_are_written_as_less_than_1e_300(tmp_path):
    from harness.significance import mark_cells
    from harness.tables.report import write_csv

    n = 50_000  # paper scale: ours hits 60 %, the baseline 30 %
    users = [f"u{i}" for i in range(n)]
    per_user = {"sda": pd.Series((np.arange(n) < 30_000) * 1.0, index=users),
                "clip": pd.Series((np.arange(n) < 15_000) * 1.0, index=users)}
    cells = pd.DataFrame([{"model": "vbpr", "extractor": e, "dataset": "toys", "group": "overall", "metric": "HR@10",
                           "value": per_user[e].mean(), "n": n, "run_key": e, "data_hash": "h"} for e in per_user])
    marked = mark_cells(cells, "sda", lambda key, group, metric: per_user[key])
    write_csv(marked, tmp_path / "t.csv")
    text = pd.read_csv(tmp_path / "t.csv", dtype=str).set_index("extractor")
    assert text.loc["sda", ["p_ttest", "p_wilcoxon", "p_holm"]].tolist() == ["< 1e-300"] * 3
    assert float(text.loc["sda", "t_stat"]) == pytest.approx(146.38, abs=0.01)  # 15,000 of 50,000, by hand
    assert text.loc["sda", "marked"] == "True"


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

    from protocol.data.prepare import load_dataset

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
    from protocol.config import results_dir

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


def test_plan_wide_overrides_reach_the_rows_that_have_the_setting(tmp_path):
    """`extractor.pca_dim` reaches the qwenvl rows only, `grid.reg_weight` the VBPR rows only,
    `train.*` every row; a row's own override wins; a key no row has is refused."""
    plan = {"title": "t", "datasets": ["beauty"], "models": ["vbpr", "sasrec"], "extractors": ["base", "qwenvl"],
            "overrides": {"extractor.pca_dim": 32, "grid.reg_weight": [0.1], "train.max_epochs": 1}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(plan))
    jobs = {(j.model, j.extractor): dict(j.overrides) for j in load_plan(str(tmp_path / "p.yaml")).jobs()}
    assert jobs[("vbpr", "qwenvl")] == {"extractor.pca_dim": 32, "grid.reg_weight": [0.1], "train.max_epochs": 1}
    assert jobs[("vbpr", "base")] == {"grid.reg_weight": [0.1], "train.max_epochs": 1}
    assert jobs[("sasrec", "qwenvl")] == {"extractor.pca_dim": 32, "train.max_epochs": 1}
    assert jobs[("sasrec", "base")] == {"train.max_epochs": 1}
    plan["rows"] = [{"model": "vbpr", "extractor": "base", "overrides": {"train.max_epochs": 3}}]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({k: v for k, v in plan.items() if k not in ("models", "extractors")}
                                                    | {"overrides": {"train.max_epochs": 1}}))
    assert dict(load_plan(str(tmp_path / "p.yaml")).jobs()[0].overrides) == {"train.max_epochs": 3}
    plan["overrides"] = {"grid.alpha": [0.1]}  # no VBPR row has alpha
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({k: v for k, v in plan.items() if k not in ("models", "extractors")}))
    with pytest.raises(HarnessError, match="override 'grid.alpha' is a setting of none"):
        load_plan(str(tmp_path / "p.yaml"))
