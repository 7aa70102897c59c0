"""The contract a plugin recommender must keep, checked on the real data set when it is first used.

What the trainer and evaluator rely on, which a native model's tests cover and a plugin's may not:
the scoring methods exist, `full_sort_predict` gives finite float scores of shape (batch, n_items),
a user's scores do not depend on which users share the batch or in what order (evaluation batches
group users by history length, so they vary), and `predict` agrees with it on the candidates.
A pass is cached under artifacts/contracts/ per plugin identity and data set, so it runs once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protocol.config import artifacts_dir
from protocol.errors import HarnessError
from protocol.fileio import stable_key, write_json

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}  # batched matmuls differ in the last bits by batch size


def passed_path(identity: dict, dataset) -> Path:
    return artifacts_dir() / "contracts" / f"{stable_key({'plugin': identity, 'data': dataset.content_hash})}.json"


def check_recommender(name: str, model_cls, identity: dict, dataset, features, params: dict) -> None:
    """Refuse a plugin model that breaks the contract, one line naming the fix (once per identity)."""
    done = passed_path(identity, dataset)
    if done.exists():
        return
    _check_methods(name, model_cls)
    try:
        model = model_cls(dataset, features, **params)
        model.eval()
        with torch.no_grad():
            model.on_eval_start()
            _check_scores(name, model, dataset)
    except HarnessError:
        raise
    except Exception as err:  # the plugin's own bug: one line, not a traceback from inside it
        raise _fail(name, f"building or scoring it on {dataset.name} raised {type(err).__name__}: {err}",
                    "fix the model (the contract scores three users of the test split)") from None
    write_json(done, {"plugin": name, "identity": identity, "dataset": dataset.name,
                      "data_hash": dataset.content_hash})


def _fail(name: str, problem: str, fix: str) -> HarnessError:
    return HarnessError(f"model plugin '{name}': {problem}; {fix}.")


def _check_methods(name: str, model_cls) -> None:
    from recommenders.base import Recommender

    missing = sorted(getattr(model_cls, "__abstractmethods__", ()))
    if model_cls.input_type != "none" and model_cls.calculate_loss is Recommender.calculate_loss:
        missing.append("calculate_loss")
    if missing:
        raise _fail(name, f"no {', '.join(missing)} method", f"define {missing[0]}(self, batch) (see "
                    "recommenders/base.py), or set input_type = \"none\" for a model with nothing to train")


def _batch(model, dataset, users: list[int], split: str = "test") -> dict:
    """An evaluation batch of `users` as the trainer builds it (recommenders/sampling.py)."""
    from recommenders.sampling import pad_left

    batch = {"users": torch.tensor(users, dtype=torch.long),
             "candidates": torch.from_numpy(dataset.candidates(split)[users])}
    if model.input_type == "sequence":
        history = dataset.history(split)
        batch["history"] = torch.from_numpy(pad_left([history[u] for u in users],
                                                     model.params.get("max_len", 200), dataset.n_items))
    return batch


def _scores(name: str, model, dataset, users: list[int]) -> torch.Tensor:
    scores = model.full_sort_predict(_batch(model, dataset, users))
    want = (len(users), dataset.n_items)
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        kind = scores.dtype if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise _fail(name, f"full_sort_predict returned {kind}, not a float tensor",
                    "return torch scores, e.g. user_vectors @ item_vectors.T")
    if tuple(scores.shape) != want:
        raise _fail(name, f"full_sort_predict returned shape {tuple(scores.shape)}, not (batch, n_items) = {want}",
                    "return one score per item of the catalogue for each user of the batch")
    if not torch.isfinite(scores).all():
        raise _fail(name, "full_sort_predict returned NaN or infinite scores",
                    "keep scores finite (check divisions, logs and the features it reads)")
    return scores.float()


def _users(dataset) -> list[int]:
    """Three users with histories of different lengths (so padding differs between batches)."""
    lengths = np.array([len(h) for h in dataset.history("test")])
    order = np.argsort(lengths, kind="stable")
    return [int(u) for u in dict.fromkeys([order[-1], order[0], order[len(order) // 2]])]


def _check_scores(name: str, model, dataset) -> None:
    users = _users(dataset)
    scores = _scores(name, model, dataset, users)
    shuffled = users[-1:] + users[:-1]
    moved = _scores(name, model, dataset, shuffled)
    if not torch.allclose(moved, scores[[users.index(u) for u in shuffled]], **TOLERANCE):
        raise _fail(name, "a user's scores change with the order of the batch's users",
                    "score each row of the batch from its own user and history only")
    alone = torch.cat([_scores(name, model, dataset, [u]) for u in users])
    if not torch.allclose(alone, scores, **TOLERANCE):
        raise _fail(name, "a user's scores change with the size of the batch (scored alone vs together)",
                    "score each row from its own user and history only (no batch statistics, no padding in the scores)")
    batch = _batch(model, dataset, users)
    picked = model.predict(batch)
    if not isinstance(picked, torch.Tensor) or tuple(picked.shape) != tuple(batch["candidates"].shape) \
            or not torch.allclose(picked.float(), scores.gather(1, batch["candidates"]), **TOLERANCE):
        raise _fail(name, "predict disagrees with full_sort_predict on the candidates",
                    "return full_sort_predict's scores of batch['candidates'] (B, C), or drop predict to inherit it")
