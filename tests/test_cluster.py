"""Table builds on real multi-node Ray clusters on 127.0.0.1, each node with a disk of its own.

Every cluster runs in network and PID namespaces of its own (tests/ray_cluster.py; needs root
and `unshare`), with token authentication on. A small plan (VBPR with MiniLM features and
SASRec on a 200-user slice of Beauty 5-core) is built four ways and must give the same cells:
on this process's local executor; on a local Ray (no address); on a head + worker cluster whose
worker alone has a (fake) GPU and every run asks for one; and on a cluster whose worker node is
killed mid-run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.cluster import Returned, Roots, pack, receive, unpack
from ray_cluster import REPO, in_namespace

SHARED = REPO.parent / "shared" / "data" / "amazon-beauty-5core"
CAN_UNSHARE = os.geteuid() == 0 and shutil.which("unshare") is not None
needs_namespaces = pytest.mark.skipif(not CAN_UNSHARE, reason="Ray clusters on loopback need root and unshare")


def slice_of_beauty(folder, users: int = 200):
    """A folder data set (sequences.txt + items.tsv) of the first users of Beauty 5-core."""
    folder.mkdir()
    lines = (SHARED / "sequences.txt").read_text().splitlines()[:users]
    (folder / "sequences.txt").write_text("\n".join(lines) + "\n")
    used = {i for line in lines for i in line.split()[1:]}
    items = pd.read_csv(SHARED / "items.tsv", sep="\t", dtype=str)
    items[items["item_id"].isin(used)].to_csv(folder / "items.tsv", sep="\t", index=False)
    return folder


def write_plan(path, dataset, resources=None):
    plan = {"title": "cluster check", "datasets": [str(dataset)],
            "rows": [{"model": "vbpr", "extractor": "base"}, {"model": "sasrec", "extractor": "base"}],
            "overrides": {"train.max_epochs": 3, "grid.reg_weight": [0.1, 0.01], "max_len": 20},
            "groups": ["overall"], "metrics": ["HR@10", "NDCG@10"]}
    if resources:
        plan["resources"] = resources
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    """The plan built on the local executor: what every cluster build must equal."""
    work = tmp_path_factory.mktemp("cluster")
    dataset = slice_of_beauty(work / "beauty-slice")
    plan = write_plan(work / "small.yaml", dataset)
    env = {**os.environ, "HARNESS_ARTIFACTS": str(work / "local" / "artifacts"),
           "HARNESS_RESULTS": str(work / "local" / "results"), "TQDM_DISABLE": "1"}
    built = subprocess.run([sys.executable, "-m", "harness", "table", str(plan)], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    cells = pd.read_csv(work / "local" / "results" / "tables" / "small.csv")
    return {"work": work, "dataset": dataset, "cells": cells}


def same_cells(result: dict, local: pd.DataFrame) -> None:
    assert result["rc"] == 0, result["out"]
    cells = pd.DataFrame(result["cells"])
    keys = ["model", "extractor", "group", "metric"]
    merged = local.merge(cells, on=keys, suffixes=("_local", "_cluster"), validate="one_to_one")
    assert len(merged) == len(local) == 4
    assert (merged["value_local"] == merged["value_cluster"]).all(), merged  # the same numbers, exactly
    assert (merged["run_key_local"] == merged["run_key_cluster"]).all()


def ran_keys(result: dict) -> list[str]:
    """The run keys the driver's log says a node ran, in order."""
    return [line.split("ran run ")[1].split()[0] for line in result["ran"] if "ran run " in line]


@needs_namespaces
def test_a_local_ray_gives_the_numbers_the_local_executor_gives(local_build):
    """`--executor ray` without an address: a Ray of its own on this machine, sharing its disk."""
    work = local_build["work"] / "local-ray"
    work.mkdir()
    result = in_namespace("local", work, write_plan(work / "small.yaml", local_build["dataset"]))
    same_cells(result, local_build["cells"])
    assert sorted(ran_keys(result)) == result["runs"]


@needs_namespaces
def test_gpu_jobs_go_to_the_gpu_node_and_results_come_home(local_build):
    """A CPU-only head (the driver's machine) and a worker with one fake GPU and a disk of its own:
    every run asks for a GPU, so each runs on the worker, fetches the data set and features from the
    driver and sends its run back; the table equals the local build's."""
    work = local_build["work"] / "gpu"
    work.mkdir()
    plan = write_plan(work / "small.yaml", local_build["dataset"], {"run": {"gpus": 1, "cpus": 1}})
    result = in_namespace("gpu", work, plan)
    same_cells(result, local_build["cells"])
    gpu_node = [n["id"] for n in result["nodes"] if n["resources"].get("GPU")]
    assert len(gpu_node) == 1
    runs = [line for line in result["ran"] if "ran run " in line]
    assert len(runs) == 3 and all(f"/{gpu_node[0][:12]}]" in line for line in runs), result["ran"]
    assert sorted(ran_keys(result)) == result["runs"]  # every run came back into the driver's store
    assert result["worker_runs"] == result["runs"]  # ...from the worker's own store
    manifest = (work / "driver" / "results" / "runs" / result["runs"][0] / "manifest.json").read_text()
    assert gpu_node[0][:12] in manifest  # the manifest names the node that ran it


@needs_namespaces
def test_a_node_lost_mid_build_costs_nothing(local_build):
    """kill -9 of the worker node while it trains a run: Ray runs its jobs again on the head, the
    table equals the local build's, and no finished run is run twice."""
    work = local_build["work"] / "loss"
    work.mkdir()
    plan = write_plan(work / "small.yaml", local_build["dataset"])
    result = in_namespace("loss", work, plan)
    assert result["killed"], "the worker never started a run"
    same_cells(result, local_build["cells"])
    keys = ran_keys(result)
    assert sorted(keys) == result["runs"] and len(keys) == len(set(keys)) == 3


def test_pack_and_unpack_round_trip_a_folder(tmp_path):
    folder = tmp_path / "features" / "abc"
    (folder / "sub").mkdir(parents=True)
    (folder / "meta.json").write_text('{"x": 1}')
    (folder / "sub" / "a.npy").write_bytes(bytes(range(256)) * 10)
    unpack(pack(str(folder)), tmp_path / "copy")
    assert (tmp_path / "copy" / "meta.json").read_text() == '{"x": 1}'
    assert (tmp_path / "copy" / "sub" / "a.npy").read_bytes() == bytes(range(256)) * 10
    (tmp_path / "copy" / "meta.json").write_text("kept")
    unpack(pack(str(folder)), tmp_path / "copy")  # a folder the node has is the one meant: kept
    assert (tmp_path / "copy" / "meta.json").read_text() == "kept"


def test_store_paths_map_between_driver_and_node(tmp_path):
    driver = Roots(str(tmp_path / "d" / "artifacts"), str(tmp_path / "d" / "results"), str(tmp_path / "d" / "raw"), "id1")
    node = Roots(str(tmp_path / "n" / "artifacts"), str(tmp_path / "n" / "results"), str(tmp_path / "n" / "raw"))
    assert node.local(driver, driver.artifacts + "/datasets/x-1") == tmp_path / "n" / "artifacts" / "datasets" / "x-1"
    assert node.local(driver, driver.raw + "/beauty/a.b") == tmp_path / "n" / "raw" / "beauty" / "a.b"
    with pytest.raises(Exception, match="outside the driver's store"):
        node.local(driver, "/etc/passwd")
    assert not node.sees(driver)  # no id file: another disk


def test_receive_replaces_a_half_written_run_and_keeps_finished_ones(tmp_path):
    from protocol.evaluate import Evaluation
    from protocol.store import ResultStore

    node = ResultStore(tmp_path / "node")  # a run finished on a node, in the node's own store
    ev = Evaluation.from_ranks(np.array([0, 3, 20]), np.array([False, True, False]))
    identity = {"run_key": "k1", "model": "pop", "extractor": "base", "dataset": "d", "profile": "mini",
                "data_hash": "h", "feature_key": "id", "seed": 1}
    node.write_run("k1", identity, {("test", "sampled"): ev}, {"identity": identity})
    driver = Roots(str(tmp_path / "a"), str(tmp_path / "r"), str(tmp_path / "raw"), "id")
    partial = tmp_path / "r" / "runs" / "k1"
    partial.mkdir(parents=True)
    (partial / "metrics.csv").write_text("garbage")  # a run that died before its manifest
    receive(Returned("k1", "n1", {"results/runs/k1": pack(str(node.run_dir("k1")))}), driver)
    home = ResultStore(tmp_path / "r")
    assert home.is_finished("k1")
    pd.testing.assert_frame_equal(home.metrics("k1"), node.metrics("k1"))
    assert pd.read_csv(tmp_path / "r" / "metrics.csv")["run_key"].tolist() == ["k1"] * len(node.metrics("k1"))
    again = (tmp_path / "r" / "runs" / "k1" / "manifest.json").stat().st_mtime_ns
    receive(Returned("k1", "n2", {"results/runs/k1": pack(str(node.run_dir("k1")))}), driver)
    assert (tmp_path / "r" / "runs" / "k1" / "manifest.json").stat().st_mtime_ns == again  # finished: kept


def test_each_teacher_is_one_job_before_the_runs_that_share_it():
    """Runs whose RAT teachers coincide (settings the teacher does not read differ) share one teacher
    job; another hidden size is another teacher; no features or alpha 0: no teacher."""
    from harness.executors import Job, teacher_jobs
    from recommenders.sasrec import SASRec

    def job(features="feat", **params):
        spec = {"model": "sasrec", "extractor": "clip", "params": SASRec.resolve_params(params)}
        return Job(spec, "/store/datasets/beauty-1", features, "/r", "/a", 1, "k")

    teachers = teacher_jobs([job(alpha=0.1), job(alpha=0.2), job(hidden=64), job(alpha=0.0), job(features=None)])
    assert [t.params["hidden"] for t in teachers] == [128, 64]
    assert all(t.dataset_path == "/store/datasets/beauty-1" for t in teachers)
