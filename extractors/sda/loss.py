"""CMSA (cross-modal soft alignment) and its "w/o soft target" ablation, InfoNCE.

Both take the pooled last hidden states of an item batch's image prompts (X) and text prompts
(Y), reduce them with a fixed block average (no learned head, no normalisation) and hold the
learnable temperature τ (initialised to 3), which is trained and saved with the adapter.

CMSA, as in the authors' code (docs/sda.md says where the paper's text differs):
    logits  = X Yᵀ / τ
    teacher = row-softmax(τ · (X Xᵀ + Y Yᵀ) / 2)          (not detached)
    loss    = ½ [CE(logits, teacher) + CE(logitsᵀ, teacherᵀ)],  CE = row-wise soft cross-entropy, mean
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The authors reduce Qwen2.5-VL-7B's 3584-d states to 768-d: dims 0-1023 in groups of 4, then
# 1024-3583 in groups of 5.
PAPER_HIDDEN, PAPER_DIM = 3584, 768


def block_sizes(hidden: int, dim: int) -> list[int]:
    """Contiguous group sizes that average `hidden` dims down to `dim`.

    The general rule: `dim` groups as equal as possible, the smaller ones first. For 3584 -> 768
    it gives 256 groups of 4 then 512 groups of 5, the authors' fixed reduction.
    """
    if not 1 <= dim <= hidden:
        raise ValueError(f"cannot block-average {hidden} dims to {dim}; choose 1 <= cmsa_dim <= {hidden}")
    size, larger = divmod(hidden, dim)
    return [size] * (dim - larger) + [size + 1] * larger


def block_average(states: torch.Tensor, dim: int) -> torch.Tensor:
    """(n, hidden) -> (n, dim): the mean of each contiguous block of `block_sizes`."""
    sizes = block_sizes(states.shape[-1], dim)
    size = sizes[0]
    small = sizes.count(size)  # the first `small` groups have `size` dims, the rest size + 1
    head = states[..., :small * size].unflatten(-1, (small, size)).mean(-1)
    tail = states[..., small * size:].unflatten(-1, (dim - small, size + 1)).mean(-1)
    return torch.cat([head, tail], dim=-1)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -Σ_j target_ij log softmax(logits)_ij."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def cmsa(x: torch.Tensor, y: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    """CMSA; also LLMEmb's soft-CLIP alignment in RAT (recommenders/rat.py), the same formula."""
    logits = x @ y.T / tau
    teacher = F.softmax(tau * (x @ x.T + y @ y.T) / 2, dim=-1)
    return (soft_cross_entropy(logits, teacher) + soft_cross_entropy(logits.T, teacher.T)) / 2


def infonce(x: torch.Tensor, y: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE on L2-normalised X, Y with the same τ: item i's pair is the only positive."""
    logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T / tau
    labels = torch.arange(len(x), device=x.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


LOSSES = {"cmsa": cmsa, "infonce": infonce}


class AlignmentLoss(nn.Module):
    """`loss(image_states, text_states)`: block average, then CMSA or InfoNCE with learnable τ."""

    def __init__(self, kind: str = "cmsa", dim: int = PAPER_DIM, tau: float = 3.0):
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"unknown loss '{kind}'; use one of {sorted(LOSSES)}")
        self.kind, self.dim = kind, dim
        self.tau = nn.Parameter(torch.tensor(float(tau)))

    def reduce(self, states: torch.Tensor) -> torch.Tensor:
        # The loss runs in float32 whatever the model's dtype: bf16 softmax over dot products of
        # 768-d vectors loses too much.
        return block_average(states.float(), self.dim)

    def forward(self, image_states: torch.Tensor, text_states: torch.Tensor) -> torch.Tensor:
        return LOSSES[self.kind](self.reduce(image_states), self.reduce(text_states), self.tau)
