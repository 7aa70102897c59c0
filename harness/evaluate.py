"""Leave-one-out evaluation: pessimistic ranks, HR@K and NDCG@K per user, overall and tail.

Ties count against the target: its rank is the number of other candidates that score at least
as high (a constant scorer gets rank n-1, so HR@10 = 0). A NaN score never helps the target.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

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

    One pass over the scores: an item beats the target unless it scores strictly lower (so ties
    and NaN count against the target); the excluded items, a few per row, are then taken back
    by looking at their scores only, and so is the target itself.
    """
    scores = _as_tensor(scores).float()
    targets = _as_tensor(targets).long().to(scores.device)
    rows = torch.arange(len(targets), device=scores.device)
    target_scores = scores[rows, targets]
    # int32 sum: summing booleans into int64 spent more time widening than comparing
    lower = (scores < target_scores[:, None]).sum(1, dtype=torch.int32).long()
    ranks = scores.shape[1] - 1 - lower  # - 1: the target itself
    if exclude is not None:
        coo = exclude.tocoo()
        r = torch.as_tensor(coo.row, dtype=torch.long, device=scores.device)
        c = torch.as_tensor(coo.col, dtype=torch.long, device=scores.device)
        counted = ~(scores[r, c] < target_scores[r]) & (c != targets[r])
        ranks -= torch.zeros_like(ranks).index_add_(0, r, counted.long())
    ranks[torch.isnan(target_scores)] = scores.shape[1] - 1
    return ranks.cpu().numpy()


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
