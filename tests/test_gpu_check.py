"""benchmarks/gpu_check.py on the CPU with tiny shapes: every check runs and writes its row."""
from __future__ import annotations

import importlib.util
import time

import pandas as pd

from tests.conftest import REPO


def test_gpu_check_runs_tiny_on_the_cpu_and_writes_its_csv(tmp_path, capsys):
    # in this process (benchmarks/ is no package): torch and transformers are imported once
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "gpu_check.csv"
    began = time.perf_counter()
    assert gpu_check.main(["--tiny", "--out", str(out)]) == 0
    assert time.perf_counter() - began < 60
    table = pd.read_csv(out)
    assert list(table["what"]) == ["extract_qwen", "adapt_step", "clip_image"]
    assert (table["seconds"] > 0).all() and (table["flops"] > 0).all()
    assert (abs(table["items_per_s"] * table["seconds"] - table["batch"].where(table["what"] != "adapt_step",
                                                                                table["batch"] / 2)) < 1e-6).all()
    assert table["tiny"].all()  # the plan never takes a tiny run for a measurement
    assert table["mfu"].isna().all()  # a CPU has no entry in the peak bf16 table
    # an adapt step (forward, recomputation, backward) costs more than an extraction batch's forward
    flops = table.set_index("what")["flops"]
    assert flops["adapt_step"] > flops["extract_qwen"]
    assert f"written: {out}" in capsys.readouterr().out
