"""Native VBPR and SLMRec against upstream MMRec's own model classes, side by side.

Same prepared data set (exported to MMRec's layout with protocol.data.export), same features,
embedding 64 (MMRec's default) on both sides, one torch thread, runs interleaved per epoch
(ours, theirs, theirs, ours, ...). Measured per side:
- training seconds per epoch: a full epoch of the side's own batches (ours: the harness sampler;
  theirs: MMRec's TrainDataLoader) through calculate_loss, backward and the optimiser step;
- evaluation, two ways: one full-ranking pass over the test users (ours: Trainer.evaluate;
  theirs: MMRec's Trainer.evaluate, full_sort_predict + top-k + its metrics), and the
  full-ranking results of validation and test, as MMRec's fit computes them at every
  evaluation step (theirs: Trainer.evaluate on the validation, then the test loader; ours:
  Trainer.evaluate_many, one scoring pass for both);
- accuracy after the same number of epochs, both scored by the harness's evaluator (test,
  sampled on the fixed 100 negatives and full ranking, HR@10 / NDCG@10).

    python -m benchmarks.model_speed [--datasets toys,sports-5core] [--epochs 10,2]

Data: mini Toys with its base features, and Sports 5-core (the largest set here) with random
4,096-d image + 384-d text features (the paper's base feature sizes). MMRec is read from
$MMREC_SRC, else ../shared/peers/MMRec/src, and used unmodified: its three import-time
incompatibilities (../shared/peers/README.md) are handled here from the outside. The CSV goes to
results/benchmarks/model_speed.csv.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from protocol.data.export import export_mmrec
from protocol.data.prepare import load_dataset
from protocol.evaluate import Evaluation, full_ranks, sampled_ranks
from protocol.featureset import FeatureSet
from protocol.fileio import atomic_path
from recommenders.slmrec import SLMRec
from recommenders.trainer import TrainConfig, Trainer, seed_everything
from recommenders.vbpr import VBPR

REPO = Path(__file__).resolve().parent.parent
MMREC_SRC = Path(os.environ.get("MMREC_SRC", REPO.parent / "shared" / "peers" / "MMRec" / "src"))
EMBEDDING = 64  # MMRec's default (overall.yaml embedding_size, SLMRec.yaml recdim)
SEED = 999  # MMRec's overall.yaml seed
# MMRec's hyper-parameter lists, at our defaults (reg is read by MMRec's SLMRec and never used)
MMREC_SETTINGS = {"VBPR": {"embedding_size": EMBEDDING, "reg_weight": 0.1},
                  "SLMRec": {"recdim": EMBEDDING, "learning_rate": 0.001, "ssl_temp": 0.2, "ssl_alpha": 0.1,
                             "reg": 0.0001}}
OURS = {"VBPR": (VBPR, {"embedding_size": EMBEDDING, "reg_weight": 0.1}),
        "SLMRec": (SLMRec, {"embedding_size": EMBEDDING, "temp": 0.2, "ssl_temp": 0.2, "ssl_alpha": 0.1})}
OUT = REPO / "results" / "benchmarks" / "model_speed.csv"


def import_mmrec() -> dict:
    """MMRec's Config, data set, loaders, model and trainer lookup, imported unmodified."""
    if not (MMREC_SRC / "utils" / "quick_start.py").exists():
        raise SystemExit(f"no MMRec checkout at {MMREC_SRC}; set MMREC_SRC to its src/ folder.")
    np.float = float  # utils/metrics.py uses np.float, removed in numpy 1.24
    # utils/dataset.py imports these at the top for raw-image training only; slmrec.py imports
    # torch_scatter for commented-out code (no wheel for this torch)
    stub = types.ModuleType("utils.data_utils")
    stub.ImageResize = stub.ImagePad = stub.image_to_tensor = stub.load_decompress_img_from_lmdb_value = None
    sys.modules.setdefault("lmdb", types.ModuleType("lmdb"))
    scatter = types.ModuleType("torch_scatter")
    scatter.scatter = None
    sys.modules.setdefault("torch_scatter", scatter)
    sys.path.insert(0, str(MMREC_SRC))
    import utils  # MMRec's package, now first on the path

    sys.modules["utils.data_utils"] = stub
    utils.data_utils = stub
    from utils.configurator import Config
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.utils import get_model, get_trainer, init_seed

    return {"Config": Config, "RecDataset": RecDataset, "TrainDataLoader": TrainDataLoader,
            "EvalDataLoader": EvalDataLoader, "get_model": get_model, "get_trainer": get_trainer,
            "init_seed": init_seed}


class Theirs:
    """One upstream MMRec model on the exported data set, driven as its quick_start does."""

    def __init__(self, mm: dict, model: str, folder: Path, name: str):
        settings = {"use_gpu": False, "data_path": str(folder) + "/", "USER_ID_FIELD": "userID",
                    "ITEM_ID_FIELD": "itemID", "inter_file_name": f"{name}.inter",
                    "vision_feature_file": "image_feat.npy", "text_feature_file": "text_feat.npy",
                    "seed": SEED, "save_recommended_topk": False} | MMREC_SETTINGS[model]
        with contextlib.chdir(MMREC_SRC):  # its Config reads configs/ from the working directory
            config = mm["Config"](model, name, settings)
        train, valid, test = mm["RecDataset"](config).split()
        for part in (train, valid, test):
            str(part)  # quick_start logs each part; RecDataset.__str__ sets the inter_num its loaders read
        self.train_data = mm["TrainDataLoader"](config, train, batch_size=config["train_batch_size"], shuffle=True)
        self.valid_data, self.test_data = (
            mm["EvalDataLoader"](config, part, additional_dataset=train, batch_size=config["eval_batch_size"])
            for part in (valid, test))
        mm["init_seed"](SEED)
        self.train_data.pretrain_setup()
        self.model = mm["get_model"](model)(config, self.train_data)
        self.trainer = mm["get_trainer"]()(config, self.model)

    def train_epoch(self, epoch: int) -> None:
        self.trainer._train_epoch(self.train_data, epoch)
        self.trainer.lr_scheduler.step()  # as MMRec's fit does after each epoch

    def eval_test(self) -> None:
        self.trainer.evaluate(self.test_data, is_test=True)

    def eval_valid_test(self) -> None:  # what MMRec's fit runs at every evaluation step
        self.trainer.evaluate(self.valid_data)
        self.trainer.evaluate(self.test_data, is_test=True)

    @torch.no_grad()
    def scores(self, users: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model.full_sort_predict([users])


class Ours:
    def __init__(self, model: str, dataset, features):
        seed_everything(SEED)
        cls, params = OURS[model]
        self.model = cls(dataset, features, **params)
        self.trainer = Trainer(self.model, dataset, TrainConfig(progress=False, device="cpu", seed=SEED))
        self.optimizer = self.trainer.make_optimizer()
        self.rng = np.random.default_rng(SEED)

    def train_epoch(self, epoch: int) -> None:
        self.trainer._train_epoch(self.optimizer, self.rng, epoch)

    def eval_test(self) -> None:
        self.trainer.evaluate("test", "full")

    def eval_valid_test(self) -> None:
        self.trainer.evaluate_many([("valid", "full"), ("test", "full")])

    @torch.no_grad()
    def scores(self, users: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        self.model.on_eval_start()
        return self.model.full_sort_predict({"users": users})


def accuracy(side, dataset, batch: int = 4096) -> dict[str, float]:
    """Test HR@10 / NDCG@10 of a side's full_sort_predict, by the harness's evaluator."""
    sampled, full = np.empty(dataset.n_users, np.int64), np.empty(dataset.n_users, np.int64)
    candidates, exclude, targets = dataset.candidates("test"), dataset.interaction_matrix, dataset.targets["test"]
    for start in range(0, dataset.n_users, batch):
        users = np.arange(start, min(start + batch, dataset.n_users))
        scores = side.scores(torch.from_numpy(users)).float()
        sampled[users] = sampled_ranks(scores.gather(1, torch.from_numpy(candidates[users])))
        full[users] = full_ranks(scores, targets[users], exclude[users])
    out = {}
    for protocol, ranks in (("sampled", sampled), ("full", full)):
        result = Evaluation.from_ranks(ranks, dataset.tail_users("test"))
        for metric in ("hit", "ndcg"):
            out[f"{protocol}_{metric}@10"] = result.value(metric, 10)
    return out


def timed(fn, *args) -> tuple[float, float]:
    """(wall, CPU) seconds; CPU time is the steadier one while other jobs share the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def data_and_features(name: str):
    dataset = load_dataset(name, "mini")
    if name == "sports-5core":  # random features of the paper's base sizes
        rng = np.random.default_rng(0)
        features = FeatureSet(rng.standard_normal((dataset.n_items, 4096), dtype=np.float32),
                              rng.standard_normal((dataset.n_items, 384), dtype=np.float32),
                              {"dataset_hash": dataset.content_hash, "key": "random-4096-384"})
        return dataset, features, "random 4096-d image + 384-d text"
    from extractors.store import load_or_extract

    features = load_or_extract(dataset, "base", "mini", {})
    return dataset, features, f"base ({features.image.shape[1]}-d image + {features.text.shape[1]}-d text)"


def compare(mm, model: str, name: str, dataset, features, folder: Path, epochs: int) -> list[dict]:
    began = time.perf_counter()
    sides = {"ours": Ours(model, dataset, features), "mmrec": Theirs(mm, model, folder, name)}
    print(f"  built both in {time.perf_counter() - began:.0f} s", flush=True)
    times = {side: {"train": [], "test_pass": [], "valid_test": []} for side in sides}
    order = ("ours", "mmrec")
    for epoch in range(epochs):
        for side in order:
            times[side]["train"].append(timed(sides[side].train_epoch, epoch))
        print(f"  epoch {epoch + 1}: " + ", ".join(f"{s} {times[s]['train'][-1][0]:.1f} s" for s in order), flush=True)
        order = order[::-1]  # ours, theirs, theirs, ours, ...
    for side in ("ours", "mmrec", "mmrec", "ours"):
        times[side]["test_pass"].append(timed(sides[side].eval_test))
        times[side]["valid_test"].append(timed(sides[side].eval_valid_test))
    rows = []
    for side, obj in sides.items():
        row = {"model": model, "dataset": name, "side": side, "epochs": epochs}
        for what in ("train", "test_pass", "valid_test"):
            wall, cpu = np.array(times[side][what]).T
            row |= {f"{what}_wall_s": float(np.median(wall)), f"{what}_cpu_s": float(np.median(cpu))}
        row |= accuracy(obj, dataset)
        rows.append(row)
        print(f"  {side}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)), flush=True)
    return rows


def markdown(table: pd.DataFrame) -> str:
    """The docs table: per (model, data set) both sides' CPU and wall seconds, ratios of CPU time
    (the steadier measure on a shared machine), and accuracy at equal epochs."""
    lines = ["| model | data | epochs | train s/epoch, ours / MMRec: CPU (wall) | speed-up | test pass, ours / MMRec: "
             "CPU (wall) | speed-up | valid + test, ours / MMRec: CPU (wall) | speed-up "
             "| test HR@10 sampled, ours / MMRec | full HR@10 | full NDCG@10 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (model, data), pair in table.groupby(["model", "dataset"], sort=False):
        ours, theirs = (pair[pair["side"] == side].iloc[0] for side in ("ours", "mmrec"))
        cells = [model, data, str(ours["epochs"])]
        for what in ("train", "test_pass", "valid_test"):
            cells += [f"{ours[what + '_cpu_s']:.2f} ({ours[what + '_wall_s']:.1f}) / "
                      f"{theirs[what + '_cpu_s']:.2f} ({theirs[what + '_wall_s']:.1f})",
                      f"{theirs[what + '_cpu_s'] / ours[what + '_cpu_s']:.1f}x"]
        cells += [f"{ours[m]:.4f} / {theirs[m]:.4f}" for m in ("sampled_hit@10", "full_hit@10", "full_ndcg@10")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="toys,sports-5core")
    parser.add_argument("--epochs", default="10,2", help="training epochs per data set (same order)")
    parser.add_argument("--models", default="VBPR,SLMRec")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--render", type=Path, help="only print the docs table of an existing CSV")
    args = parser.parse_args()
    if args.render:
        print(markdown(pd.read_csv(args.render)))
        return
    torch.set_num_threads(1)
    mm = import_mmrec()
    names, epochs = args.datasets.split(","), [int(e) for e in args.epochs.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for name, n_epochs in zip(names, epochs):
        dataset, features, described = data_and_features(name)
        print(f"{name}: {dataset.n_users} users, {dataset.n_items} items, {len(dataset.train_users)} training "
              f"interactions; features {described}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            saved = features.save(folder / "features")
            export_mmrec(dataset, folder / name, saved)
            for model in args.models.split(","):
                print(f"{model} on {name}, {n_epochs} epochs, interleaved", flush=True)
                for row in compare(mm, model, name, dataset, features, folder, n_epochs):
                    rows.append(row | {"features": described, "threads": 1, "embedding": EMBEDDING,
                                       "date": time.strftime("%Y-%m-%d")})
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))
    print(markdown(table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
