"""Parity: our SASRec and BERT4Rec against RecBole 1.2.1's, on the same split and candidates.

    .venv/bin/python benchmarks/recbole_parity.py [--dataset beauty] [--max-len 50] [--epochs 40]

1. Installs RecBole 1.2.1 into its own venv (artifacts/recbole-venv) when it is missing.
2. Exports the prepared data set to RecBole atomic files (protocol.data.export): RecBole's
   leave-one-out by time then gives our split.
3. Trains ours with the harness trainer, then RecBole's with its own trainer (this file again,
   with --worker, inside RecBole's venv, with the runtime shims of recommenders/recbole_compat.py;
   site-packages stay untouched). One after the other, same threads.
4. Scores both on the data set's fixed candidates and on the full catalogue with our evaluator,
   prints metrics and training seconds per epoch side by side, and writes
   results/benchmarks/recbole_parity.csv.

Settings matched: hidden 128, 2 blocks, 1 head, dropout 0.5, ReLU FFN of width 128, lr 1e-3,
batch 512, BERT4Rec mask probability 0.6, early stopping on validation NDCG@10 (ours: sampled,
RecBole: full ranking, its only mode for this). Not matchable: RecBole has no BCE, so it trains
with BPR and one uniform negative; its SASRec epoch holds one sample per training interaction
(every prefix), ours one row per user predicting every next item.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = {"sasrec": "SASRec", "bert4rec": "BERT4Rec"}


# -- inside RecBole's venv ------------------------------------------------------------------
def recbole_worker(args) -> None:
    sys.path.insert(0, str(REPO))  # our shims, evaluator and data set reader: numpy, pandas, torch only
    from recommenders.recbole_compat import require

    require()
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.utils import get_model, get_trainer, init_seed

    from protocol.data.dataset import Dataset
    from protocol.evaluate import full_ranks, sampled_ranks

    settings = json.loads(args.settings)
    config = Config(model=MODELS[args.model], dataset=args.name, config_dict={
        "data_path": args.export, "checkpoint_dir": args.out, "seed": settings["seed"], "device": "cpu",
        "use_gpu": False, "show_progress": False, "epochs": settings["epochs"],
        "stopping_step": settings["patience"], "train_batch_size": 512, "eval_batch_size": 1024,
        "learning_rate": 1e-3, "hidden_size": 128, "inner_size": 128, "n_layers": 2, "n_heads": 1,
        "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "hidden_act": "relu", "layer_norm_eps": 1e-8,
        "MAX_ITEM_LIST_LENGTH": settings["max_len"], "mask_ratio": 0.6, "loss_type": "BPR",
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]}})
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config)
    train, valid, _ = data_preparation(config, data)
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    seconds = []

    def timed(*a, train_epoch=trainer._train_epoch, **k):
        began = time.perf_counter()
        out = train_epoch(*a, **k)
        seconds.append(time.perf_counter() - began)
        return out

    trainer._train_epoch = timed
    trainer.fit(train, valid, saved=True, show_progress=False)
    # RecBole's checkpoint holds its config object: not a weights-only file
    model.load_state_dict(torch.load(trainer.saved_model_file, weights_only=False)["state_dict"])
    model.eval()

    ours = Dataset(args.data)
    tokens = data.field2token_id["item_id"]
    internal = torch.tensor([tokens[str(i)] for i in range(ours.n_items)])
    max_len = settings["max_len"]
    ranks = {"seconds": np.array(seconds)}
    with torch.no_grad():
        for split in ("valid", "test"):
            history, candidates = ours.history(split), ours.candidates(split)
            sampled, full = [], []
            for start in range(0, ours.n_users, 512):
                users = np.arange(start, min(start + 512, ours.n_users))
                seq = torch.zeros(len(users), max_len, dtype=torch.long)  # RecBole pads on the right
                lengths = torch.tensor([min(len(history[u]), max_len) for u in users])
                for row, u in enumerate(users):
                    seq[row, : lengths[row]] = internal[history[u][-max_len:]]
                scores = model.full_sort_predict(Interaction({model.ITEM_SEQ: seq, model.ITEM_SEQ_LEN: lengths}))
                scores = scores.view(len(users), -1)[:, internal]  # our item order
                sampled.append(sampled_ranks(scores.gather(1, torch.from_numpy(candidates[users]))))
                full.append(full_ranks(scores, ours.targets[split][users], ours.interaction_matrix[users]))
            ranks[f"{split}_sampled"], ranks[f"{split}_full"] = np.concatenate(sampled), np.concatenate(full)
    np.savez(Path(args.out) / "ranks.npz", **ranks)


# -- in our venv ----------------------------------------------------------------------------
def recbole_python() -> Path:
    venv = REPO / "artifacts" / "recbole-venv"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "recbole-installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # torch first, pinned to the local CPU build (a bare `torch` would fetch a CUDA build)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "recbole==1.2.1"], check=True)
        (venv / "bin" / "recbole-installed").touch()
    return python


def ours(model: str, dataset, settings: dict) -> dict:
    import torch

    from recommenders import MODELS as REGISTRY
    from recommenders.trainer import TrainConfig, Trainer, seed_everything

    seed_everything(settings["seed"])
    net = REGISTRY.get(model)(dataset, None, max_len=settings["max_len"])
    config = TrainConfig(max_epochs=settings["epochs"], patience=settings["patience"], seed=settings["seed"],
                         progress=False)
    trainer = Trainer(net, dataset, config)
    result = trainer.fit()
    evaluations = trainer.evaluate_all()
    return {"seconds": result.seconds_per_epoch, "epochs": result.epochs_run, "threads": torch.get_num_threads(),
            **{f"{s}_{p}": ev.per_user["rank"].to_numpy() for (s, p), ev in evaluations.items()}}


def recbole(model: str, dataset, settings: dict, python: Path, work: Path) -> dict:
    from protocol.data.export import export

    export_dir = work / "export"
    export(dataset, "recbole", export_dir / dataset.name)
    out = work / model
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python), __file__, "--worker", "--model", model, "--name", dataset.name,
                    "--export", str(export_dir), "--data", str(dataset.path), "--out", str(out),
                    "--settings", json.dumps(settings)], check=True)
    ranks = dict(np.load(out / "ranks.npz"))
    seconds = ranks.pop("seconds")
    return {"seconds": float(seconds.mean()), "epochs": len(seconds), **ranks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--models", default="sasrec,bert4rec")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--model", "--name", "--export", "--data", "--out", "--settings"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return recbole_worker(args)

    import pandas as pd

    from protocol.config import results_dir
    from protocol.data.prepare import load_dataset
    from protocol.evaluate import Evaluation
    from protocol.fileio import atomic_path

    settings = {"max_len": args.max_len, "epochs": args.epochs, "patience": args.patience, "seed": args.seed}
    dataset = load_dataset(args.dataset)
    python = recbole_python()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for framework, run in (("ours", lambda: ours(model, dataset, settings)),
                                   ("recbole", lambda: recbole(model, dataset, settings, python, Path(tmp)))):
                out = run()
                row = {"model": model, "framework": framework, "dataset": dataset.name,
                       "seconds_per_epoch": round(out["seconds"], 2), "epochs": out["epochs"]}
                for protocol in ("sampled", "full"):
                    ev = Evaluation.from_ranks(out[f"test_{protocol}"], dataset.tail_users("test"))
                    row |= {f"{protocol} HR@10": ev.value("hit"), f"{protocol} NDCG@10": ev.value("ndcg"),
                            f"{protocol} tail HR@10": ev.value("hit", group="tail")}
                rows.append(row)
                print(row, flush=True)
    table = pd.DataFrame(rows)
    out = results_dir() / "benchmarks" / "recbole_parity.csv"
    with atomic_path(out) as tmp_file:
        table.to_csv(tmp_file, index=False)
    print(f"\n{table.to_string(index=False, float_format=lambda v: f'{v:.4f}')}")
    print(f"\nmax_len {args.max_len}, up to {args.epochs} epochs, patience {args.patience}; written: {out}")


if __name__ == "__main__":
    main()
