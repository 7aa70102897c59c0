"""Scenarios on a real multi-node Ray cluster bound to 127.0.0.1, run by tests/test_cluster.py.

`in_namespace(...)` runs this file inside a network and PID namespace of its own (as root):
127.0.0.1 is the only address there, so Ray cannot bind the machine's interface, and when the
scenario ends the kernel ends every process it started. Each node is a `ray start --block` in a
process group of its own (stopped by killing that group); the worker node also gets a mount
namespace where the driver's store is hidden under an empty tmpfs, so it has a disk of its own
as on a real cluster. Token authentication stays on: the token file is made here and given to
every node and the driver through RAY_AUTH_TOKEN_PATH.

Usage (inside the namespace): python ray_cluster.py SCENARIO WORKDIR PLAN -> JSON on the last line;
SCENARIO: local (no cluster: a local Ray), gpu (the worker alone has a fake GPU), loss (the worker
node is killed mid-run).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

PORT = 6390
PYTHON = sys.executable
RAY = str(Path(PYTHON).with_name("ray"))
REPO = Path(__file__).resolve().parent.parent


def in_namespace(scenario: str, workdir: Path, plan: Path, timeout: float = 600) -> dict:
    """Run a scenario in fresh network + PID namespaces; its JSON result."""
    # Ray's session files on a tmpfs of the namespace's own: no cluster of another test is found there.
    command = (f"ip link set lo up && mkdir -p /tmp/ray && mount -t tmpfs none /tmp/ray && "
               f"exec {PYTHON} {Path(__file__).resolve()} {scenario} {workdir} {plan}")
    done = subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c", command],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(f"scenario {scenario} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


def store_env(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    return {"HARNESS_ARTIFACTS": str(root / "artifacts"), "HARNESS_RESULTS": str(root / "results")}


class Node:
    """One `ray start --block` in a process group of its own."""

    def __init__(self, args: list[str], env: dict, hide: Path | None = None, log: Path | None = None):
        command = [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", *args]
        if hide is not None:  # a disk of its own: the driver's store is an empty tmpfs for this node
            command = ["unshare", "--mount", "bash", "-c",
                       f"mount -t tmpfs none {hide} && exec {' '.join(command)}"]
        self.log = open(log, "w") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def kill(self) -> None:
        """kill -9 of the node's processes (its raylet, object store, workers)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def wait_for_nodes(env: dict, count: int, timeout: float = 90) -> list[dict]:
    """The cluster's alive nodes (id, resources) once `count` have joined."""
    script = ("import json, ray; ray.init(address='127.0.0.1:%d', log_to_driver=False); "
              "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} for n in ray.nodes() if n['Alive']]))"
              % PORT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = subprocess.run([PYTHON, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            nodes = json.loads(done.stdout.strip().splitlines()[-1])
            if len(nodes) >= count:
                return nodes
        time.sleep(1)
    raise RuntimeError(f"{count} Ray nodes did not join in {timeout} s")


def harness(env: dict, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "harness", *words], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=900)


def table_result(root: Path, plan: Path, built: subprocess.CompletedProcess) -> dict:
    """What the tests compare: the exit code, the cells, which node ran which run (the log)."""
    import pandas as pd

    tables = root / "results" / "tables"
    csv = tables / f"{plan.stem}.csv"
    cells = pd.read_csv(csv)[["model", "extractor", "dataset", "group", "metric", "value", "run_key"]] if csv.exists() else None
    log = (tables / f"{plan.stem}.log").read_text() if (tables / f"{plan.stem}.log").exists() else ""
    runs = sorted(p.name for p in (root / "results" / "runs").glob("*") if (p / "manifest.json").exists())
    return {"rc": built.returncode, "out": built.stdout[-3000:] + built.stderr[-3000:],
            "cells": cells.to_dict("records") if cells is not None else [],
            "ran": [line for line in log.splitlines() if "] ran " in line], "runs": runs}


def main(scenario: str, workdir: str, plan: str) -> dict:
    work, plan = Path(workdir), Path(plan)
    token = work / "token"
    token.write_text(secrets.token_hex(32))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "TQDM_DISABLE": "1"}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_ARTIFACTS", "HARNESS_RESULTS", "RAY_"))}
    driver_root = work / "driver"
    driver = {**base, **auth, **store_env(driver_root)}
    if scenario == "local":  # no cluster: `--executor ray` starts a local Ray of its own
        return table_result(driver_root, plan, harness(driver, "table", str(plan), "--executor", "ray"))
    worker_root = work / "worker"
    gpus = ["--num-gpus", "1"] if scenario == "gpu" else []
    # The head runs on the driver's machine and shares its disk; the worker node has its own.
    head = Node(["--head", "--port", str(PORT), "--num-cpus", "1", "--num-gpus", "0", "--include-dashboard", "false"],
                {**base, **auth, **store_env(driver_root)}, log=work / "head.log")
    worker = Node(["--address", f"127.0.0.1:{PORT}", "--num-cpus", "1", *gpus],
                  {**base, **auth, **store_env(worker_root)}, hide=driver_root, log=work / "worker.log")
    try:
        nodes = wait_for_nodes(driver, 2)
        words = ["table", str(plan), "--executor", "ray", "--address", f"127.0.0.1:{PORT}"]
        if scenario == "loss":  # kill -9 the worker node once it is mid-run (a checkpoint written)
            build = subprocess.Popen([PYTHON, "-m", "harness", *words], env=driver, cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 300
            while not list((worker_root / "artifacts" / "checkpoints").glob("*.pt")) and time.time() < deadline:
                time.sleep(0.05)
            killed = bool(list((worker_root / "artifacts" / "checkpoints").glob("*.pt")))
            worker.kill()
            out, err = build.communicate(timeout=900)
            built = subprocess.CompletedProcess(build.args, build.returncode, out, err)
        else:
            built = harness(driver, *words)
            killed = False
        result = table_result(driver_root, plan, built)
        worker_runs = sorted(p.name for p in (worker_root / "results" / "runs").glob("*"))
        return result | {"nodes": nodes, "worker_runs": worker_runs, "killed": killed}
    finally:
        worker.kill()
        head.kill()


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4]), default=str))
