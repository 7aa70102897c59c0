"""Grid search: expansion and checks, resume after interruption, selection on validation, Ray."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from test_models import random_features

import harness.executors as executors
from harness.grid import grid_axes, run_grid
from protocol.errors import HarnessError
from protocol.store import ResultStore

TINY = {"embedding_size": 16, "train.max_epochs": 2, "train.full_ranking": False, "train.progress": False}


def test_axes_come_from_the_model_yaml_the_profile_and_the_cli():
    axes, fixed = grid_axes("vbpr", "base", {"grid.reg_weight": [0.5, 1.0], "train.max_epochs": 2})
    assert axes == {"reg_weight": [0.5, 1.0]} and fixed == {"train.max_epochs": 2}
    paper = grid_axes("vbpr", "base", {}, "paper")[0]
    assert paper["reg_weight"] == [0.1, 2.0, 1.0, 0.01, 0.001, 0.0001, 0.00001]
    assert set(grid_axes("slmrec", "base", {}, "paper")[0]) == {"lr", "ssl_temp", "ssl_alpha"}
    # the mini profile's own small grid replaces the model's (configs/profiles/mini.yaml)
    assert grid_axes("vbpr", "base", {}, "mini")[0] == {"reg_weight": [0.1, 0.001]}
    # RAT's alpha only matters with features: the ID rows (base) do not repeat one model five times
    assert grid_axes("sasrec", "base", {}, "paper")[0] == {}
    assert grid_axes("bert4rec", "clip", {}, "paper")[0] == {"alpha": [0.01, 0.05, 0.1, 0.15, 0.2]}


def test_a_grid_key_the_model_does_not_take_is_refused():
    with pytest.raises(HarnessError, match="grid key 'reg' is not a setting of model 'slmrec'"):
        grid_axes("slmrec", "base", {"grid.reg": [0.1]})
    with pytest.raises(HarnessError, match="Did you mean 'reg_weight'"):
        grid_axes("vbpr", "base", {"grid.reg_weigth": [0.1]})


def test_unknown_model_or_executor_is_refused(mini_beauty, tmp_path):
    with pytest.raises(HarnessError, match="Did you mean 'slmrec'"):
        run_grid("slmrc", "beauty", store=ResultStore(tmp_path), data=mini_beauty)
    with pytest.raises(HarnessError, match="unknown executor"):
        executors.run_jobs([object()], "slurm")


def test_grid_resumes_after_interruption_without_rerunning_finished_points(tmp_path, mini_beauty, monkeypatch):
    store, features = ResultStore(tmp_path / "results"), random_features(mini_beauty)
    overrides = TINY | {"grid.reg_weight": [0.5, 0.01, 0.0001]}
    run_job, ran = executors.run_job, []

    def interrupted_at_second_point(job):
        ran.append(job.spec["params"]["reg_weight"])
        if ran == [0.5, 0.01]:
            raise KeyboardInterrupt
        return run_job(job)

    monkeypatch.setattr(executors, "run_job", interrupted_at_second_point)
    with pytest.raises(KeyboardInterrupt):
        run_grid("vbpr", "beauty", "base", overrides=overrides, store=store, data=mini_beauty, features=features)
    assert len(store.finished_keys()) == 1

    ran.clear()
    out = run_grid("vbpr", "beauty", "base", overrides=overrides, store=store, data=mini_beauty, features=features)
    assert ran == [0.01, 0.0001]  # the finished point is not run again
    assert len(store.finished_keys()) == 3
    points = out["points"]
    assert out["winner"] == points.loc[points["valid"].idxmax(), "run_key"]  # validation only
    summary = pd.read_csv(out["summary"])
    assert len(summary) == 1 and summary.loc[0, "run_key"] == out["winner"]
    assert json.loads(summary.loc[0, "chosen"]) == {"reg_weight": points.loc[points["valid"].idxmax(), "reg_weight"]}
    assert {"test_sampled_overall_hit@10", "test_sampled_tail_ndcg@10", "n_test_tail"} <= set(summary.columns)

    ran.clear()
    run_grid("vbpr", "beauty", "base", overrides=overrides, store=store, data=mini_beauty, features=features)
    assert ran == [] and len(pd.read_csv(out["summary"])) == 1  # one row per (model, extractor, data)
