"""Evaluator golden values: perfect, constant, hand-computed NDCG, ties, tail groups, NaN."""
import math

import numpy as np
import scipy.sparse as sp

from protocol.evaluate import evaluate, full_ranks, metrics_from_ranks, sampled_ranks


def test_perfect_scorer_gives_one():
    scores = np.tile(-np.arange(101, dtype=float), (7, 1))  # target (column 0) scores highest
    ev = evaluate(scores, tail=np.zeros(7, bool))
    for k in (5, 10, 20):
        assert ev.value("hit", k) == 1.0
        assert ev.value("ndcg", k) == 1.0


def test_constant_scorer_gives_zero_because_ties_count_against_the_target():
    ev = evaluate(np.ones((5, 101)), tail=np.zeros(5, bool))
    assert list(ev.per_user["rank"]) == [100] * 5
    assert ev.value("hit", 10) == 0.0 and ev.value("ndcg", 20) == 0.0


def test_hand_computed_ndcg():
    # Target 0.5 is beaten by 0.9 and tied by one 0.5: pessimistic rank 2 -> NDCG = 1/log2(4) = 0.5.
    scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.2]])
    assert sampled_ranks(scores).tolist() == [2]
    ev = evaluate(scores, tail=[False], ks=(1, 3))
    assert ev.value("hit", 1) == 0.0 and ev.value("ndcg", 1) == 0.0
    assert ev.value("hit", 3) == 1.0
    assert math.isclose(ev.value("ndcg", 3), 0.5)
    # rank 4 at K=10: 1/log2(6)
    assert math.isclose(metrics_from_ranks(np.array([4]))["ndcg@10"][0], 1 / math.log2(6))


def test_nan_scores_never_help_the_target():
    scores = np.array([[np.nan, 0.0, 1.0], [1.0, np.nan, 0.0]])
    assert sampled_ranks(scores).tolist() == [2, 1]


def test_tail_grouping_and_sizes():
    scores = np.array([[1.0] + [0.0] * 100,      # hit, tail
                       [0.0] + [1.0] * 100,      # miss, tail
                       [1.0] + [0.0] * 100])     # hit, not tail
    ev = evaluate(scores, tail=[True, True, False])
    summary = ev.summary().set_index(["group", "metric", "k"])
    assert summary.loc[("overall", "hit", 10), "value"] == 2 / 3
    assert summary.loc[("tail", "hit", 10), "value"] == 0.5
    assert summary.loc[("tail", "hit", 10), "n"] == 2
    assert summary.loc[("overall", "hit", 10), "n"] == 3


def test_empty_tail_group_is_nan_with_n_zero():
    ev = evaluate(np.ones((3, 11)), tail=np.zeros(3, bool))
    tail = ev.summary().query("group == 'tail'")
    assert len(tail) == 6 and (tail["n"] == 0).all() and tail["value"].isna().all()
    assert math.isnan(ev.value("hit", 10, "tail"))


def test_full_ranking_masks_the_users_other_items_but_never_the_target():
    scores = np.array([[0.1, 0.9, 0.8, 0.7, 0.2],
                       [0.9, 0.1, 0.2, 0.3, 0.4]])
    targets = np.array([4, 0])
    # user 0 already has items 1 and 2 (masked); only item 3 (0.7) beats the target (0.2)
    exclude = sp.csr_matrix(np.array([[0, 1, 1, 0, 1], [1, 0, 0, 0, 0]], dtype=np.float32))
    assert full_ranks(scores, targets, exclude).tolist() == [1, 0]
    assert full_ranks(scores, targets).tolist() == [3, 0]


def test_full_ranks_follow_the_definition_on_ties_nan_and_masks():
    """Against a literal count: other items, not masked, scoring >= the target or NaN."""
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, (40, 30)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.05] = np.nan
    targets = rng.integers(0, 30, 40)
    mask = rng.random(scores.shape) < 0.2
    mask[:5, :] = False
    mask[np.arange(40), targets] |= rng.random(40) < 0.5  # the target masked on some rows: never excluded
    expected = []
    for row, target in enumerate(targets):
        t = scores[row, target]
        others = [j for j in range(30) if j != target and not mask[row, j]]
        expected.append(29 if np.isnan(t) else sum(not scores[row, j] < t for j in others))
    assert full_ranks(scores, targets, sp.csr_matrix(mask.astype(np.float32))).tolist() == expected


def test_ranks_from_vectors_equal_ranks_of_their_score_matrix_block_by_block(monkeypatch):
    """Small integer vectors: exact dot products with many ties; blocks of 16 rows over 45 users;
    sampled ranks taken from the blocks (with targets) and from gathered candidates (without)."""
    import torch

    import protocol.evaluate as evaluate_module

    rng = np.random.default_rng(1)
    users = torch.from_numpy(rng.integers(-2, 3, (45, 4)).astype(np.float32))
    items = torch.from_numpy(rng.integers(-2, 3, (30, 4)).astype(np.float32))
    items[7] = float("nan")  # a NaN item beats every target; a NaN target ranks last
    targets = [rng.integers(0, 30, 45), rng.integers(0, 30, 45)]
    targets[0][:3] = 7
    exclude = sp.csr_matrix((rng.random((45, 30)) < 0.2).astype(np.float32))
    candidates = [np.concatenate([t[:, None], rng.integers(0, 30, (45, 5))], axis=1) for t in targets]
    monkeypatch.setattr(evaluate_module, "BLOCK_FLOATS", 16 * 30)  # three blocks: 16, 16, 13 rows
    monkeypatch.setattr(evaluate_module, "SAMPLED_ROWS", 16)
    scores = (users @ items.T).numpy()
    for wanted in (targets, []):
        found, sampled = evaluate_module.ranks_from_vectors(users, items, wanted, candidates, exclude)
        assert len(found) == len(wanted) and len(sampled) == 2
        for ranks, target in zip(found, wanted):
            assert ranks.tolist() == full_ranks(scores, target, exclude).tolist()
        for ranks, chosen in zip(sampled, candidates):
            assert ranks.tolist() == sampled_ranks(np.take_along_axis(scores, chosen, 1)).tolist()
        assert (sampled[0][:3] == 5).all()  # NaN target: last of its 6 candidates
    assert evaluate_module.ranks_from_vectors(users, items, targets)[0][0][:3].tolist() == [29] * 3
