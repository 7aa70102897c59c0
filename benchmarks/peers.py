"""Side by side: our VBPR, SLMRec, SASRec and BERT4Rec against MMRec's and RecBole's own model code.

    .venv/bin/python benchmarks/peers.py [--dataset toys] [--epochs 3] [--max-len 50]
                                         [--models vbpr,slmrec,sasrec,bert4rec]
    .venv/bin/python benchmarks/peers.py --render results/benchmarks/peers-toys.csv  # the docs table

Each pair runs on the same data set, split, fixed negatives and (for VBPR and SLMRec) the same
base feature set, in the same harness loop (trainer, batches, evaluator), with the settings
matched below, one torch thread, `--epochs` epochs (no early stop), interleaved: ours, theirs,
theirs, ours. Every run is a fresh process, so its peak resident memory is its own.
"Theirs" is the upstream model class run through the harness adapters (`mmrec:<Name>`,
`recbole:<Name>`): the columns compare model implementations, not MMRec's or RecBole's data
loaders and trainers (see docs/peers.md).

Reported per run: training seconds per epoch, evaluation seconds (validation and test, sampled
and full ranking), peak memory; and test HR@10 and NDCG@10 (sampled and full) with 95%
bootstrap confidence intervals over users (scipy.stats.bootstrap). Writes
results/benchmarks/peers-<dataset>.csv after every run (rows of the pairs run again replace
their old rows; other pairs' rows stay).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# ours -> (theirs, our settings, their settings): the same sizes and objectives where both exist
PAIRS = {
    "vbpr": ("mmrec:VBPR", {"embedding_size": 64, "reg_weight": 0.1},
             {"embedding_size": 64, "reg_weight": 0.1}),
    "slmrec": ("mmrec:SLMRec", {"embedding_size": 64},
               {"recdim": 64, "lr": 0.001, "ssl_temp": 0.2, "ssl_alpha": 0.1}),
    # RecBole has no BCE: BPR with one negative per target; ReLU FFN of width 128, one head
    "sasrec": ("recbole:SASRec", {},
               {"hidden_size": 128, "inner_size": 128, "n_heads": 1, "hidden_act": "relu",
                "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "loss_type": "BPR"}),
    "bert4rec": ("recbole:BERT4Rec", {},
                 {"hidden_size": 128, "inner_size": 128, "n_heads": 1, "hidden_act": "relu",
                  "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "mask_ratio": 0.6,
                  "loss_type": "BPR"}),
}
METRICS = [(protocol, metric) for protocol in ("sampled", "full") for metric in ("hit@10", "ndcg@10")]


def one_run(args) -> None:
    """In a fresh process: one run, then its numbers as JSON on the last line of stdout."""
    import numpy as np
    import torch
    from scipy import stats

    from harness.runner import RunSpec, execute
    from protocol.store import ResultStore

    torch.set_num_threads(1)
    overrides = {**json.loads(args.params), "train.max_epochs": args.epochs, "train.patience": args.epochs,
                 "train.progress": False}
    spec = RunSpec.resolve(args.one, args.dataset, "base", None, overrides)
    store = ResultStore(Path(args.store))
    out = execute(spec, store=store, force=True)
    manifest = out["manifest"]
    per_user = store.per_user(out["run_key"]).query("split == 'test'")
    row = {"run_key": out["run_key"], "epochs": manifest["identity"]["epochs"],
           "train_s_per_epoch": manifest["timings"]["seconds_per_epoch"],
           "eval_s": manifest["timings"]["eval_seconds"], "peak_mb": manifest["peak_memory_mb"],
           "threads": torch.get_num_threads()}
    for protocol, metric in METRICS:
        values = per_user[per_user["protocol"] == protocol][metric].to_numpy()
        ci = stats.bootstrap((values,), np.mean, n_resamples=2000, confidence_level=0.95,
                             method="percentile", rng=np.random.default_rng(0)).confidence_interval
        name = f"{protocol}_{metric.replace('hit', 'hr')}"
        row |= {name: values.mean(), f"{name}_lo": ci.low, f"{name}_hi": ci.high}
    print(json.dumps(row))


def run_in_process(model: str, params: dict, args, store: Path) -> dict:
    command = [sys.executable, __file__, "--one", model, "--params", json.dumps(params), "--dataset", args.dataset,
               "--epochs", str(args.epochs), "--store", str(store)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(table) -> str:
    """The docs table: one line per (pair, side), the turns' times side by side, test metrics
    with their 95% intervals (equal across turns: the runs are deterministic)."""
    lines = ["| pair | side | model | epochs | train s/epoch (turns) | eval s (turns) | peak MB | sampled HR@10 "
             "| sampled NDCG@10 | full HR@10 | full NDCG@10 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (pair, side), runs in table.groupby(["pair", "side"], sort=False):
        first = runs.iloc[0]
        turns = lambda col: ", ".join(f"{v:.2f} ({int(t)})" for v, t in zip(runs[col], runs["turn"]))
        cells = [pair, side, first["model"], str(int(first["epochs"])), turns("train_s_per_epoch"),
                 turns("eval_s"), ", ".join(f"{v:.0f}" for v in runs["peak_mb"])]
        for protocol, metric in METRICS:
            name = f"{protocol}_{metric.replace('hit', 'hr')}"
            cells.append(f"{first[name]:.4f} [{first[name + '_lo']:.4f}, {first[name + '_hi']:.4f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="toys")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=50, help="history length of the sequential pairs")
    parser.add_argument("--models", default=",".join(PAIRS), help=f"comma-separated, of {', '.join(PAIRS)}")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--render", type=Path, help="only print the docs table of an existing CSV")
    args = parser.parse_args()
    if args.one:
        return one_run(args)

    import pandas as pd

    if args.render:
        return print(markdown(pd.read_csv(args.render)))

    from protocol.config import artifacts_dir, results_dir
    from protocol.fileio import atomic_path

    unknown = [m for m in args.models.split(",") if m not in PAIRS]
    if unknown:
        raise SystemExit(f"unknown model '{unknown[0]}'; use some of {', '.join(PAIRS)}.")
    store = artifacts_dir() / "benchmarks" / "peers-runs"  # the runs themselves (untracked)
    out = results_dir() / "benchmarks" / f"peers-{args.dataset}.csv"
    models = args.models.split(",")
    kept = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=["pair"])
    kept = kept[~kept["pair"].isin(models)]
    rows = []
    for ours in models:
        theirs, our_params, their_params = PAIRS[ours]
        if ours in ("sasrec", "bert4rec"):
            our_params, their_params = {**our_params, "max_len": args.max_len}, {**their_params, "max_len": args.max_len}
        sides = {"ours": (ours, our_params), "theirs": (theirs, their_params)}
        for turn, side in enumerate(("ours", "theirs", "theirs", "ours")):  # interleaved
            model, params = sides[side]
            row = {"dataset": args.dataset, "pair": ours, "side": side, "model": model, "turn": turn + 1,
                   "params": json.dumps(params, sort_keys=True), **run_in_process(model, params, args, store)}
            rows.append(row)
            print(f"{model}: {row['train_s_per_epoch']:.2f} s/epoch, eval {row['eval_s']:.2f} s, "
                  f"{row['peak_mb']:.0f} MB, test sampled HR@10 {row['sampled_hr@10']:.4f}", flush=True)
            table = pd.concat([kept, pd.DataFrame(rows)], ignore_index=True)
            with atomic_path(out) as tmp:
                table.to_csv(tmp, index=False)
    print(f"\n{table.drop(columns=['run_key', 'params']).to_string(index=False, float_format=lambda v: f'{v:.4f}')}")
    print(f"\n{markdown(table)}\n\nwritten: {out}")


if __name__ == "__main__":
    main()
