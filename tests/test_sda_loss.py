"""CMSA and InfoNCE against hand computations in plain numpy; the fixed block average."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.sda.loss import AlignmentLoss, block_average, block_sizes, cmsa, soft_cross_entropy

# A hand-made batch of 3 items with 7 hidden dims, block-averaged to 3 dims ([0:2], [2:4], [4:7]).
IMAGE = np.array([[1.0, 0.0, 0.5, -0.5, 0.2, 0.1, 0.0],
                  [0.0, 1.0, -0.5, 0.5, 0.0, 0.3, 0.3],
                  [0.5, 0.5, 0.0, 0.0, 1.0, -1.0, 0.5]])
TEXT = np.array([[0.8, 0.2, 0.4, -0.2, 0.0, 0.3, 0.0],
                 [0.1, 0.7, -0.3, 0.6, 0.1, 0.2, 0.3],
                 [0.4, 0.4, 0.2, -0.1, 0.9, -0.6, 0.3]])
GROUPS = [slice(0, 2), slice(2, 4), slice(4, 7)]
TAU = 3.0


def hand_reduce(states):
    return np.stack([states[:, g].mean(axis=1) for g in GROUPS], axis=1)


def hand_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def hand_soft_ce(logits, target):
    return float(np.mean(-(target * np.log(hand_softmax(logits))).sum(axis=1)))


def run(kind, image=IMAGE, text=TEXT):
    loss = AlignmentLoss(kind, dim=3, tau=TAU)
    return loss(torch.tensor(image, dtype=torch.float64), torch.tensor(text, dtype=torch.float64))


def test_cmsa_matches_a_hand_computation():
    x, y = hand_reduce(IMAGE), hand_reduce(TEXT)
    logits = x @ y.T / TAU
    teacher = hand_softmax(TAU * (x @ x.T + y @ y.T) / 2)
    expected = (hand_soft_ce(logits, teacher) + hand_soft_ce(logits.T, teacher.T)) / 2
    assert run("cmsa").item() == pytest.approx(expected, rel=1e-6)


def test_cmsa_of_a_2x2_batch_computed_by_hand():
    """τ = 2, X = [[1, 0], [0, 2]], Y = [[1, 1], [0, 1]] (dim 2: the block average keeps them).

    logits  = X Yᵀ / τ = [[1, 0], [2, 2]] / 2 = [[0.5, 0], [1, 1]]
    teacher = row-softmax(τ (X Xᵀ + Y Yᵀ) / 2) = row-softmax([[1, 0], [0, 4]] + [[2, 1], [1, 1]])
            = row-softmax([[3, 1], [1, 5]]) = [[p, 1 - p], [1 - q, q]],
              p = 1 / (1 + e⁻²) = 0.880797, q = 1 / (1 + e⁻⁴) = 0.982014
    -log softmax([0.5, 0]) = [ln(1 + e^-0.5), ln(1 + e^0.5)] = [0.474077, 0.974077]
    rows:    row 1: p · 0.474077 + (1 - p) · 0.974077 = 0.533678
             row 2: logits [1, 1] give ln 2 whatever the target = 0.693147;  mean 0.613413
    columns: logitsᵀ = [[0.5, 1], [0, 1]], teacherᵀ = [[p, 1 - q], [1 - p, q]]
             row 1: p · ln(1 + e^0.5) + (1 - q) · ln(1 + e^-0.5) = 0.857964 + 0.008527 = 0.866491
             row 2: (1 - p) · ln(1 + e) + q · ln(1 + e⁻¹) = 0.156544 + 0.307628 = 0.464172;  mean 0.665332
    loss = (0.613413 + 0.665332) / 2 = 0.639372
    """
    loss = AlignmentLoss("cmsa", dim=2, tau=2.0)
    value = loss(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    assert value.item() == pytest.approx(0.639372, abs=1e-6)


def test_infonce_matches_a_hand_computation():
    x, y = hand_reduce(IMAGE), hand_reduce(TEXT)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    logits = x @ y.T / TAU
    hard = np.eye(3)
    expected = (hand_soft_ce(logits, hard) + hand_soft_ce(logits.T, hard)) / 2
    assert run("infonce").item() == pytest.approx(expected, rel=1e-6)


def test_the_teacher_is_not_detached_and_tau_learns():
    x = torch.tensor(hand_reduce(IMAGE), requires_grad=True)
    y = torch.tensor(hand_reduce(TEXT))
    tau = torch.tensor(TAU, dtype=torch.float64, requires_grad=True)
    grad_x, grad_tau = torch.autograd.grad(cmsa(x, y, tau), [x, tau])
    assert grad_tau.item() != 0.0
    # The same loss with the teacher detached: its gradient on X lacks the teacher's part.
    teacher = torch.softmax(tau * (x @ x.T + y @ y.T) / 2, dim=-1).detach()
    logits = x @ y.T / tau
    detached = (soft_cross_entropy(logits, teacher) + soft_cross_entropy(logits.T, teacher.T)) / 2
    grad_detached, = torch.autograd.grad(detached, x)
    assert detached.item() == pytest.approx(cmsa(x, y, tau).item())
    assert (grad_x - grad_detached).norm() > 0.5 * grad_detached.norm()


def test_paper_block_average_is_4s_then_5s():
    assert block_sizes(3584, 768) == [4] * 256 + [5] * 512
    states = torch.randn(2, 3584, dtype=torch.float64)
    out = block_average(states, 768)
    assert out.shape == (2, 768)
    torch.testing.assert_close(out[:, 0], states[:, 0:4].mean(1))
    torch.testing.assert_close(out[:, 255], states[:, 1020:1024].mean(1))
    torch.testing.assert_close(out[:, 256], states[:, 1024:1029].mean(1))
    torch.testing.assert_close(out[:, 767], states[:, 3579:3584].mean(1))


def test_block_average_generalises_and_refuses_impossible_widths():
    assert block_sizes(64, 16) == [4] * 16
    assert block_sizes(10, 10) == [1] * 10
    assert block_sizes(7, 3) == [2, 2, 3]
    with pytest.raises(ValueError, match="cmsa_dim"):
        block_sizes(64, 65)
    with pytest.raises(ValueError, match="unknown loss"):
        AlignmentLoss("kl")
