"""One epoch loop for every model: seeded batches, validation on the fixed negatives each epoch,
early stopping with patience, best state kept, test once at the end, resumable per epoch."""
from __future__ import annotations

import copy
import contextlib
import math
import random
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from protocol.config import NON_NEGATIVE, at_least, device_rule
from protocol.errors import HarnessError
from protocol.evaluate import Evaluation, full_ranks, ranks_from_vectors, sampled_ranks
from protocol.fileio import atomic_path
from recommenders.sampling import eval_batches, pairwise_batches, sequence_batches


def metric_rule(value: str) -> str | None:
    return None if re.fullmatch(r"(hit|ndcg)@[1-9]\d*", value) else "hit@K or ndcg@K (e.g. ndcg@10)"


@dataclass
class TrainConfig:
    max_epochs: int = field(default=200, metadata={"rule": at_least(0)})
    patience: int = field(default=20, metadata={"rule": at_least(1)})
    # picked on sampled validation, overall group
    valid_metric: str = field(default="ndcg@10", metadata={"rule": metric_rule})
    eval_batch_size: int = field(default=1024, metadata={"rule": at_least(1)})
    device: str = field(default="auto", metadata={"rule": device_rule})  # auto | cpu | cuda | cuda:N
    seed: int = field(default=2024, metadata={"rule": NON_NEGATIVE})  # numpy takes no negative seed
    full_ranking: bool = True  # also report full-catalogue ranking at the end
    progress: bool = True
    # torch CPU threads for the run; 0: torch's default alone, cores // workers in a grid
    threads: int = field(default=0, metadata={"rule": at_least(0)})


@dataclass
class TrainResult:
    best_epoch: int = 0
    epochs_run: int = 0
    history: list[dict] = field(default_factory=list)  # epoch, loss, valid metric, seconds
    seconds_per_epoch: float = 0.0
    resumes: int = 0  # times this run was resumed from its checkpoint
    earlier_seconds: float = 0.0  # spent by the processes before the last resume, up to their last checkpoint


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or on Linux the process's RSS high-water
    mark (VmHWM; writing 5 to clear_refs resets it), so a run in a long process reports its own."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    """Peak since reset_peak_memory: CUDA memory allocated, or the process's resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: the process's peak (Linux KiB)


class Trainer:
    def __init__(self, model, dataset, config: TrainConfig, checkpoint: Path | None = None):
        self.model, self.dataset, self.config = model, dataset, config
        self.device = resolve_device(config.device)
        self.model.to(self.device)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.max_len = model.params.get("max_len") if model.input_type == "sequence" else None

    # -- training -------------------------------------------------------------------------
    def _batches(self, rng):
        p = self.model.params
        if self.model.input_type == "sequence":
            return sequence_batches(self.dataset, p["batch_size"], self.model.train_length(), rng)
        return pairwise_batches(self.dataset, p["batch_size"], rng)

    def _train_epoch(self, optimizer, rng, epoch: int) -> float:
        self.model.train()
        self.model.on_epoch_start(epoch)
        for group in optimizer.param_groups:  # from the epoch alone, so a resumed run needs no state
            group["lr"] = self.model.params["lr"] * self.model.lr_factor(epoch)
        total, count = 0.0, 0
        batches = tqdm(self._batches(rng), desc=f"epoch {epoch}", leave=False,
                       disable=not self.config.progress, unit="batch")
        for batch in batches:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            loss = self.model.calculate_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            value = loss.item()
            if not math.isfinite(value):  # every later step would be garbage: stop at once
                return value
            loss.backward()
            optimizer.step()
            total, count = total + value, count + 1
        return total / max(count, 1)

    def make_optimizer(self) -> torch.optim.Optimizer:
        # fused: one kernel per step instead of several passes over every parameter (same update)
        return torch.optim.Adam((p for p in self.model.parameters() if p.requires_grad), fused=True,
                                lr=self.model.params["lr"], weight_decay=self.model.params["weight_decay"])

    def _state(self, optimizer, rng, epoch, best, result, seconds) -> dict:
        return {"model": self.model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "best": best, "result": result, "seconds": seconds, "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}

    def discard(self) -> None:
        """Remove this run's checkpoint."""
        if self.checkpoint:
            self.checkpoint.unlink(missing_ok=True)

    def _save(self, state: dict) -> None:
        if self.checkpoint:
            with atomic_path(self.checkpoint) as tmp:
                torch.save(state, tmp)

    def fit(self) -> TrainResult:
        began = time.perf_counter()  # this process's share of the run's time starts here
        cfg, metric = self.config, self.config.valid_metric
        seed_everything(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        result = TrainResult()
        reset_peak_memory(self.device)  # the run's peak_memory_mb covers fit and evaluation
        if not any(p.requires_grad for p in self.model.parameters()):
            return result
        optimizer = self.make_optimizer()
        best = {"value": -np.inf, "epoch": 0, "state": None, "bad": 0}
        start = 1
        if self.checkpoint and self.checkpoint.exists():
            try:
                state = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
            except Exception as err:  # truncated or not a checkpoint: torch raises many kinds
                raise HarnessError(f"the checkpoint {self.checkpoint} is damaged ({type(err).__name__}); delete "
                                   "it, or run the same command with --force, to train from the start.") from None
            self.model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            rng.bit_generator.state = state["numpy_rng"]
            torch.set_rng_state(state["torch_rng"])
            if state["cuda_rng"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            best, result, start = state["best"], state["result"], state["epoch"] + 1
            result.resumes, result.earlier_seconds = result.resumes + 1, state.get("seconds", 0.0)
        bar = tqdm(range(start, cfg.max_epochs + 1), desc=self.model.name, initial=start - 1,
                   total=cfg.max_epochs, disable=not cfg.progress, unit="epoch")
        for epoch in bar:
            if best["bad"] >= cfg.patience:
                break
            epoch_began = time.perf_counter()
            loss = self._train_epoch(optimizer, rng, epoch)
            seconds = time.perf_counter() - epoch_began
            if not math.isfinite(loss):
                self.discard()  # resuming it would only reach this loss again
                raise HarnessError(f"epoch {epoch}: the training loss is {loss} (not finite), so the run "
                                   f"stopped and nothing was stored; likely cause: {likely_settings(self.model)}; "
                                   "lower it (or return it to its default) and run again.")
            value = self.evaluate("valid", "sampled").value(*_metric_parts(metric))
            result.history.append({"epoch": epoch, "loss": loss, f"valid_{metric}": value, "seconds": seconds})
            if value > best["value"]:
                best = {"value": value, "epoch": epoch, "bad": 0,
                        "state": copy.deepcopy({k: v.cpu() for k, v in self.model.state_dict().items()})}
            else:
                best["bad"] += 1
            bar.set_postfix(loss=f"{loss:.4f}", **{metric: f"{value:.4f}"})
            # every process's time so far: the earlier ones' up to their last checkpoint, and this
            # one's since fit began (not since this epoch began)
            spent = result.earlier_seconds + time.perf_counter() - began
            self._save(self._state(optimizer, rng, epoch, best, result, spent))
        if best["state"] is not None:
            self.model.load_state_dict(best["state"])
        result.best_epoch = best["epoch"]
        result.epochs_run = len(result.history)
        result.seconds_per_epoch = float(np.mean([h["seconds"] for h in result.history])) if result.history else 0.0
        return result

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, split: str, protocol: str) -> Evaluation:
        """`protocol`: sampled (target + fixed negatives) or full (whole catalogue, history masked)."""
        return self.evaluate_many([(split, protocol)])[(split, protocol)]

    def evaluate_all(self) -> dict[tuple[str, str], Evaluation]:
        protocols = ("sampled", "full") if self.config.full_ranking else ("sampled",)
        return self.evaluate_many([(s, p) for s in ("valid", "test") for p in protocols])

    @torch.no_grad()
    def evaluate_many(self, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], Evaluation]:
        """Several (split, protocol) evaluations from one scoring pass: a model that scores users
        without their history scores each user once for every split and protocol; a sequence
        model once per split (its input, the history, differs)."""
        self.model.eval()
        self.model.on_eval_start()
        data = self.dataset
        ranks = {w: np.empty(data.n_users, dtype=np.int64) for w in wanted}
        candidates = {s: data.candidates(s) for s, p in wanted if p == "sampled"}
        splits = list(dict.fromkeys(s for s, _ in wanted))
        for group in [[w for w in wanted if w[0] == s] for s in splits] if self.max_len else [wanted]:
            sampled = [s for s, p in group if p == "sampled"]
            full = [s for s, p in group if p == "full"]
            order, vectors = [], []
            for batch in eval_batches(data, group[0][0], self.config.eval_batch_size, self.max_len, False):
                users = batch["users"].numpy()
                batch = {k: v.to(self.device) for k, v in batch.items()}
                factors = self.model.score_factors(batch)
                if factors is not None:  # ranked below, every user at once
                    order.append(users)
                    vectors.append(factors[0])
                    items = factors[1]
                    continue
                scores = self.model.full_sort_predict(batch)
                for split in sampled:
                    chosen = torch.from_numpy(candidates[split][users]).to(self.device)
                    ranks[(split, "sampled")][users] = sampled_ranks(scores.gather(1, chosen))
                for split in full:
                    ranks[(split, "full")][users] = full_ranks(scores, data.targets[split][users],
                                                               data.interaction_matrix[users])
            if vectors:
                users = np.concatenate(order)
                found_full, found_sampled = ranks_from_vectors(
                    torch.cat(vectors), items, [data.targets[s][users] for s in full],
                    [candidates[s][users] for s in sampled], data.interaction_matrix[users] if full else None)
                for protocol, splits_found in (("full", zip(full, found_full)), ("sampled", zip(sampled, found_sampled))):
                    for split, found in splits_found:
                        ranks[(split, protocol)][users] = found
        return {w: Evaluation.from_ranks(ranks[w], data.tail_users(w[0])) for w in wanted}


def likely_settings(model) -> str:
    """What a non-finite loss most likely comes from: the model's number settings changed from its
    defaults, lr first (too large a step is the usual cause), else the learning rate itself."""
    defaults = type(model).resolve_params({})
    changed = [k for k, v in model.params.items() if isinstance(v, float) and v != defaults.get(k)]
    return ", ".join(f"{k}={model.params[k]:g}" for k in sorted(changed, key=lambda k: k != "lr") or ["lr"])


def _metric_parts(name: str) -> tuple[str, int]:
    metric, k = name.split("@")
    return metric, int(k)
