"""Leave-one-out evaluation: pessimistic ranks, HR@K and NDCG@K per user, overall and tail.

Ties count against the target: its rank is the number of other candidates that score at least
as high (a constant scorer gets rank n-1, so HR@10 = 0). A NaN score never helps the target.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

KS = (5, 10, 20)
GROUPS = ("overall", "tail")


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def sampled_ranks(scores) -> np.ndarray:
    """Scores (users, candidates) with the target in column 0 -> the target's 0-based rank."""
    scores = _as_tensor(scores).float()
    target = scores[:, :1]
    beaten = (scores[:, 1:] >= target) | torch.isnan(scores[:, 1:])
    ranks = beaten.sum(1)
    ranks[torch.isnan(target[:, 0])] = scores.shape[1] - 1
    return ranks.cpu().numpy()


def full_ranks(scores, targets, exclude=None) -> np.ndarray:
    """Scores (users, items) over the whole catalogue -> rank of each row's target item.

    `exclude` is a scipy CSR (users, items) of items to leave out of the ranking (the user's
    other interactions); the target itself is never excluded.
    """
    scores = _as_tensor(scores).float()
    targets = _as_tensor(targets).long().to(scores.device)
    return _block_ranks(scores, targets, exclude).cpu().numpy()


# Floats of one block of scores in ranks_from_vectors: on a CPU a few MB, so a block stays in
# cache between the multiply that writes it and the comparisons that read it; on a GPU 256 MB.
BLOCK_FLOATS = 2**21
GPU_BLOCK_FLOATS = 2**26
SAMPLED_ROWS = 1024  # users per step when only candidates are scored


def score_candidates(users: torch.Tensor, items: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Dot products of user vectors (B, H) with their rows' candidates (B, C) among item
    vectors (n, H): (B, C) scores without scoring the whole catalogue."""
    return torch.bmm(F.embedding(candidates, items), users[:, :, None]).squeeze(-1)


def ranks_from_vectors(users: torch.Tensor, items: torch.Tensor, targets=(), candidates=(),
                       exclude=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Ranks when the scores are `users @ items.T`: the full-catalogue rank of each array of
    `targets` (one item per user, e.g. the validation and the test item; `exclude` as in
    `full_ranks`), and the sampled rank of each array of `candidates` (target first). The same
    ranks as `full_ranks` and `sampled_ranks` on that matrix.

    With targets, blocks of rows are scored into one reused buffer, and every target and
    candidate set of a row is ranked from its block: a fresh (1024, n_items) matrix per batch
    costs more in page faults than the multiply itself.
    Candidates alone are scored by gathering their vectors, which costs less than the catalogue.
    """
    device, users, items = users.device, users.float(), items.float()
    targets = [_as_tensor(t).long().to(device) for t in targets]
    candidates = [_as_tensor(c).long().to(device) for c in candidates]
    full = [np.empty(len(users), dtype=np.int64) for _ in targets]
    sampled = [np.empty(len(users), dtype=np.int64) for _ in candidates]
    if not targets:
        for start in range(0, len(users), SAMPLED_ROWS):
            part = slice(start, start + SAMPLED_ROWS)
            for ranks, chosen in zip(sampled, candidates):
                ranks[part] = sampled_ranks(score_candidates(users[part], items, chosen[part]))
        return full, sampled
    rows = max(16, (GPU_BLOCK_FLOATS if users.is_cuda else BLOCK_FLOATS) // max(len(items), 1))
    items_t = items.T.contiguous()  # (H, n_items): the faster layout for the multiply
    buffer = torch.empty(min(rows, len(users)), len(items), device=device)
    beaten = torch.empty(buffer.shape, dtype=torch.bool, device=device)
    for start in range(0, len(users), rows):
        part = slice(start, min(start + rows, len(users)))
        block = torch.matmul(users[part], items_t, out=buffer[: part.stop - start])
        for ranks, chosen in zip(sampled, candidates):
            ranks[part] = sampled_ranks(block.gather(1, chosen[part]))
        masked = None if exclude is None else exclude[part]
        for ranks, target in zip(full, targets):
            ranks[part] = _block_ranks(block, target[part], masked, beaten[: part.stop - start]).cpu().numpy()
    return full, sampled


def _block_ranks(scores: torch.Tensor, targets: torch.Tensor, exclude=None,
                 lower: torch.Tensor | None = None) -> torch.Tensor:
    """One pass over the scores: an item beats the target unless it scores strictly lower (so
    ties and NaN count against the target); the excluded items, a few per row, are then taken
    back by looking at their scores only, and so is the target itself. `lower`: an optional
    boolean buffer of the scores' shape."""
    rows = torch.arange(len(targets), device=scores.device)
    target_scores = scores[rows, targets]
    lower = torch.lt(scores, target_scores[:, None], out=lower)
    # summed as bytes into int32: widening booleans to int64 cost more than comparing
    ranks = scores.shape[1] - 1 - lower.view(torch.uint8).sum(1, dtype=torch.int32).long()  # - 1: the target
    if exclude is not None:
        coo = exclude.tocoo()
        r = torch.as_tensor(coo.row, dtype=torch.long, device=scores.device)
        c = torch.as_tensor(coo.col, dtype=torch.long, device=scores.device)
        counted = ~(scores[r, c] < target_scores[r]) & (c != targets[r])
        ranks -= torch.zeros_like(ranks).index_add_(0, r, counted.long())
    ranks[torch.isnan(target_scores)] = scores.shape[1] - 1
    return ranks


def metrics_from_ranks(ranks: np.ndarray, ks=KS) -> dict[str, np.ndarray]:
    ranks = np.asarray(ranks)
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"hit@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    return out


@dataclass
class Evaluation:
    """Per-user metrics of one (split, protocol) and their group means."""

    per_user: pd.DataFrame  # user, tail, rank, hit@k, ndcg@k

    @classmethod
    def from_ranks(cls, ranks, tail, users=None, ks=KS) -> "Evaluation":
        ranks = np.asarray(ranks)
        users = np.arange(len(ranks)) if users is None else np.asarray(users)
        frame = pd.DataFrame({"user": users, "tail": np.asarray(tail, dtype=bool), "rank": ranks})
        for name, values in metrics_from_ranks(ranks, ks).items():
            frame[name] = values
        return cls(frame)

    def group(self, name: str) -> pd.DataFrame:
        return self.per_user if name == "overall" else self.per_user[self.per_user["tail"]]

    def summary(self) -> pd.DataFrame:
        """Long rows: group, metric, k, value, n. An empty group gives NaN with n = 0."""
        rows = []
        metric_cols = [c for c in self.per_user.columns if "@" in c]
        for group in GROUPS:
            part = self.group(group)
            for col in metric_cols:
                metric, k = col.split("@")
                value = float(part[col].mean()) if len(part) else float("nan")
                rows.append({"group": group, "metric": metric, "k": int(k), "value": value, "n": len(part)})
        return pd.DataFrame(rows)

    def value(self, metric: str, k: int = 10, group: str = "overall") -> float:
        part = self.group(group)
        return float(part[f"{metric}@{k}"].mean()) if len(part) else float("nan")


def evaluate(scores, tail, targets=None, exclude=None, users=None, ks=KS) -> Evaluation:
    """Sampled protocol when `targets` is None (target in column 0), else full ranking."""
    ranks = sampled_ranks(scores) if targets is None else full_ranks(scores, targets, exclude)
    return Evaluation.from_ranks(ranks, tail, users, ks)
