"""A rehearsal of the paper profile: `table table1 --profile paper` on a miniature of its inputs.

Raw Amazon 2014 files under HARNESS_RAW, item images fetched by `data images` from a server on
127.0.0.1 (every 7th missing, one corrupt), model folders in a Hugging Face cache under the hub ids the
paper profile names: every input sits where a user places the real one and is read by the same
code. The paper's grids and recipes are cut down only by table-wide overrides. The commands run
as a user runs them, in subprocesses (the hub cache location is read when huggingface_hub loads).

It builds Beauty alone (a partial build, 64 cells), then all three data sets (192 cells); about a
minute on the 2-core machine.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from rehearsal import CATEGORIES, ImageServer, build_model_folders, write_raw_category

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USERS, ITEMS = 300, 400  # dense enough for the paper's recipe and 100 negatives per user
# Table 1's plan, cut down by plan-wide overrides only (each reaches the jobs that have the
# setting): fewer points, epochs and steps; pca_dim and cmsa_dim fit the small models' 64 dims.
CUT_DOWN = {"train.max_epochs": 1, "teacher_epochs": 1, "grid.reg_weight": [0.1], "grid.lr": [0.001],
            "grid.ssl_temp": [0.2], "grid.ssl_alpha": [0.1], "grid.alpha": [0.1], "extractor.pca_dim": 32,
            "extractor.cmsa_dim": 16, "extractor.steps": 2}


@pytest.fixture(scope="module")
def paper_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    server = ImageServer()
    written = {name: write_raw_category(root / "raw", name, USERS, ITEMS, server.base) for name in CATEGORIES}
    paths = [path for w in written.values() for path in w["images"].values()]
    corrupt = written["beauty"]["images"][written["beauty"]["most_bought"]]  # surely kept by the recipe
    server.serve(paths, corrupt=(corrupt,))
    build_model_folders(root / "hub")
    env = {**os.environ, "HARNESS_RAW": str(root / "raw"), "HF_HUB_CACHE": str(root / "hub"),
           "HF_HUB_OFFLINE": "1", "HARNESS_ARTIFACTS": str(root / "artifacts"),
           "HARNESS_RESULTS": str(root / "results"), "HARNESS_PROFILE": "paper", "TQDM_DISABLE": "1"}
    plan = yaml.safe_load(open(os.path.join(REPO, "configs", "tables", "table1.yaml")))
    (root / "plans").mkdir()
    (root / "plans" / "table1.yaml").write_text(yaml.safe_dump({**plan, "overrides": CUT_DOWN}))
    yield {"root": root, "env": env, "written": written, "plan": str(root / "plans" / "table1.yaml")}
    server.close()


def harness(env, *words, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *words], env=env, cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def fetch_images(inputs, dataset: str) -> int:
    """`data images` fetches what the server has, reports the 404s, and a second call resumes."""
    counts = []
    for _ in range(2):
        fetched = harness(inputs["env"], "data", "images", "--dataset", dataset, "--workers", "4")
        assert fetched.returncode == 0, fetched.stderr
        found = re.search(r"(\d+) downloaded, (\d+) already there, (\d+) failed", fetched.stdout + fetched.stderr)
        counts.append(tuple(map(int, found.groups())))
    (downloaded, there, failed), again = counts
    assert there == 0 and downloaded > 0 and failed > 0  # every 7th item has no image on the server
    assert again == (0, downloaded, failed)  # resumed: nothing fetched twice, the 404s retried
    return failed


def build_table(inputs, datasets: list[str]) -> pd.DataFrame:
    failed = inputs.setdefault("failed", {})  # each data set's images fetched once
    for dataset in datasets:
        if dataset not in failed:
            failed[dataset] = fetch_images(inputs, dataset)
    only = ["--datasets", *datasets] if len(datasets) < len(CATEGORIES) else []
    built = harness(inputs["env"], "table", inputs["plan"], *only)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "failed:" not in built.stdout + built.stderr
    # the paper profile's own file names, a partial build's apart
    name = "table1.paper" + ("" if not only else ".partial-" + "-".join(datasets))
    for suffix in (".csv", ".md", ".tex"):
        assert (inputs["root"] / "results" / "tables" / f"{name}{suffix}").exists(), name
    check_image_reports(inputs, {d: failed[d] for d in datasets})
    return pd.read_csv(inputs["root"] / "results" / "tables" / f"{name}.csv")


def check_image_reports(inputs, failed: dict[str, int]) -> None:
    """Each extractor that reads the item images met the 404s as missing and the corrupt JPEG as
    unreadable (the base extractor reads the .b file's CNN vectors instead)."""
    seen = set()
    for path in (inputs["root"] / "artifacts" / "features").glob("*/*/*/meta.json"):
        meta = json.loads(path.read_text())
        dataset = path.parent.parent.parent.name
        if dataset in failed and meta["extractor"] != "base":
            assert meta["images"]["missing"] == failed[dataset], (path, meta["images"])
            seen.add(meta["extractor"])
            assert meta["images"]["unreadable"] == (1 if dataset == "beauty" else 0), (path, meta["images"])
    assert seen == {"clip", "qwenvl", "sda"}


def check_cells(cells: pd.DataFrame, datasets: list[str]) -> None:
    grid = cells[cells["metric"].isin(["HR@10", "NDCG@10"])]
    assert len(grid) == 4 * 4 * len(datasets) * 2 * 2
    assert set(grid["dataset"]) == set(datasets)
    assert grid["value"].between(0, 1).all() and np.isfinite(grid["value"]).all()
    assert (grid["run_key"].astype(str).str.len() > 0).all()
    assert grid["paper_value"].notna().all()  # every cell sits beside the paper's number


def test_paper_profile_rehearsal(paper_inputs):
    """A partial build (Beauty: 64 cells), then the whole table (192 cells) reusing its runs."""
    partial = build_table(paper_inputs, ["beauty"])
    check_cells(partial, ["beauty"])
    full = build_table(paper_inputs, list(CATEGORIES))
    check_cells(full, list(CATEGORIES))
    keys = ["model", "extractor", "dataset", "group", "metric"]
    both = partial.merge(full, on=keys, suffixes=("_partial", "_full"))
    assert len(both) == 64 and (both["run_key_partial"] == both["run_key_full"]).all()
    assert (both["value_partial"] == both["value_full"]).all()


def test_table_without_the_raw_files_names_each_missing_input_once(tmp_path):
    """Before any work: each missing input once with its fix, exit 2, nothing written (the mini
    profile's table1 files untouched)."""
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    (tables / "table1.csv").write_text("the mini profile's table\n")
    env = {**os.environ, "HARNESS_RAW": str(tmp_path / "raw"), "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HUB_OFFLINE": "1", "HARNESS_ARTIFACTS": str(tmp_path / "artifacts"),
           "HARNESS_RESULTS": str(tmp_path / "results")}
    built = harness(env, "table", "table1", "--profile", "paper", timeout=300)
    assert built.returncode == 2
    lines = built.stderr.strip().splitlines()
    missing = [line for line in lines if line.startswith("missing: ")]
    assert len(missing) == len(set(missing)) == len(lines) - 1 and lines[-1].startswith("error: ")
    for name, (_, category) in CATEGORIES.items():
        for raw in (f"reviews_{category}.json.gz", f"meta_{category}.json.gz", f"image_features_{category}.b"):
            where = [line for line in missing if raw in line]
            assert len(where) == 1 and str(tmp_path / "raw" / name / raw) in where[0], raw
    for model in ("Qwen/Qwen2.5-VL-7B-Instruct", "openai/clip-vit-large-patch14"):
        assert sum(model in line for line in missing) == 1
    assert "Traceback" not in built.stderr
    assert sorted(p.name for p in tables.iterdir()) == ["table1.csv"]
    assert (tables / "table1.csv").read_text() == "the mini profile's table\n"
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").rglob("*.csv"))
