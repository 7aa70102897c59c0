"""Time per training epoch of VBPR and SLMRec on a synthetic data set of Amazon Baby's shape
(19,400 users, 7,050 items, ~117,000 training interactions, 4,096-d image + 384-d text features),
ours against the same models doing MMRec's order of work; and SASRec / BERT4Rec on the mini data.

    .venv/bin/python benchmarks/model_speed.py [--epochs 1] [--models vbpr,slmrec,sasrec,bert4rec]

The synthetic set is written as a real prepared data set (harness.data.build.build_dataset) into a
temporary folder; positives are uniform over items (no popularity skew), which gives each batch
more distinct items than real data does: a conservative case for VBPR's per-batch projection.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from extractors.featureset import FeatureSet
from harness.data.build import build_dataset
from harness.data.dataset import Dataset
from harness.data.spec import DatasetSpec
from recommenders.slmrec import SLMRec
from recommenders.trainer import TrainConfig, Trainer
from recommenders.vbpr import VBPR

USERS, ITEMS, TRAIN, IMAGE_DIM, TEXT_DIM = 19_400, 7_050, 117_000, 4_096, 384


def baby_shaped(folder: Path, seed: int = 0) -> tuple[Dataset, FeatureSet]:
    rng = np.random.default_rng(seed)
    extra = rng.multinomial(TRAIN - USERS, np.full(USERS, 1 / USERS))  # >= 1 training item each
    lengths = extra + 1 + 2  # + validation and test items
    users = np.repeat(np.arange(USERS), lengths)
    items = np.concatenate([rng.choice(ITEMS, size=n, replace=False) for n in lengths])
    inter = pd.DataFrame({"user": users, "item": items, "time": np.arange(len(users))})
    table = pd.DataFrame({"raw_id": np.arange(ITEMS), "title": [f"item {i}" for i in range(ITEMS)]})
    spec = DatasetSpec(name="baby-shaped", domain="baby", recipe="none")
    build_dataset(folder / "data", inter, table, spec, {}, "synthetic")
    dataset = Dataset(folder / "data")
    features = FeatureSet(rng.standard_normal((ITEMS, IMAGE_DIM), dtype=np.float32),
                          rng.standard_normal((ITEMS, TEXT_DIM), dtype=np.float32),
                          {"dataset_hash": dataset.content_hash, "key": "random"})
    return dataset, features


class MMRecVBPR(VBPR):
    """VBPR doing MMRec's work: every item's features projected on every batch."""

    def item_vectors(self, items=None):
        table = super().item_vectors()
        return table if items is None else table[items]


class MMRecSLMRec(SLMRec):
    """SLMRec doing MMRec's work: every item's features projected on every batch, one propagation
    per view over an uncoalesced COO graph (as MMRec builds it), all nodes fused."""

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        self.image = F.normalize(torch.from_numpy(features.image), dim=1)
        self.text = F.normalize(torch.from_numpy(features.text), dim=1)
        coo = self.adjacency.to_sparse_coo()
        self.adjacency = torch.sparse_coo_tensor(coo.indices(), coo.values(), coo.shape, check_invariants=False)

    def smooth(self, x):
        layers = [x]
        for _ in range(self.params["n_layers"]):
            layers.append(torch.sparse.mm(self.adjacency, layers[-1]))
        return torch.stack(layers).mean(0)

    def views(self, nodes=None):
        views = (self.item_embedding, self.image_proj(self.image), self.text_proj(self.text))
        full = torch.cat([self.smooth(torch.cat([self.user_embedding, view])) for view in views], 1)
        return full if nodes is None else full[nodes]


def seconds_per_epoch(model_cls, dataset, features, epochs: int, **params) -> tuple[float, float]:
    """(wall, CPU) seconds per training epoch, validation excluded. CPU time (all threads of this
    process) is the steadier number when other jobs share the cores."""
    torch.manual_seed(0)
    model = model_cls(dataset, features, **params)
    config = TrainConfig(max_epochs=epochs, patience=epochs, progress=False, full_ranking=False)
    trainer, cpu = Trainer(model, dataset, config), []

    def timed(*args, train_epoch=trainer._train_epoch):
        began = time.process_time()
        loss = train_epoch(*args)
        cpu.append(time.process_time() - began)
        return loss

    trainer._train_epoch = timed
    return trainer.fit().seconds_per_epoch, float(np.mean(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--models", default="vbpr,slmrec,sasrec,bert4rec")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the machine has 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = args.models.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d')}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if {"vbpr", "slmrec"} & set(models):
            began = time.perf_counter()
            dataset, features = baby_shaped(Path(tmp))
            print(f"synthetic Baby-shaped set: {dataset.n_users} users, {dataset.n_items} items, "
                  f"{len(dataset.train_users)} training interactions ({time.perf_counter() - began:.0f} s)")
            pairs = {"vbpr": (VBPR, MMRecVBPR), "slmrec": (SLMRec, MMRecSLMRec)}
            for name in ("vbpr", "slmrec"):
                if name in models:
                    ours, upstream = pairs[name]
                    fast = seconds_per_epoch(ours, dataset, features, args.epochs)
                    slow = seconds_per_epoch(upstream, dataset, features, args.epochs)
                    rows.append((name, "baby-shaped", fast, slow))
                    print(f"{name}: ours {fast[0]:.1f} s/epoch ({fast[1]:.1f} s CPU), MMRec's order of work "
                          f"{slow[0]:.1f} s/epoch ({slow[1]:.1f} s CPU)", flush=True)
    if {"sasrec", "bert4rec"} & set(models):
        from harness.data.prepare import load_dataset
        from recommenders import MODELS

        mini = load_dataset("beauty", "mini")
        for name in ("sasrec", "bert4rec"):
            if name in models:
                fast = seconds_per_epoch(MODELS.get(name), mini, None, args.epochs, max_len=200)
                rows.append((name, "mini beauty, max_len 200", fast, (float("nan"),) * 2))
                print(f"{name} (mini beauty, max_len 200): {fast[0]:.1f} s/epoch ({fast[1]:.1f} s CPU)", flush=True)
    print(f"\n| model | data | ours: wall / CPU s per epoch | MMRec's order of work: wall / CPU s per epoch |"
          f" ({args.threads} threads)\n|---|---|---|---|")
    for name, data, fast, slow in rows:
        print(f"| {name} | {data} | {fast[0]:.1f} / {fast[1]:.1f} | {slow[0]:.1f} / {slow[1]:.1f} |")


if __name__ == "__main__":
    main()
