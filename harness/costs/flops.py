"""FLOPs of the jobs, from parameter counts and token counts (2 FLOPs per multiply-add).

- A Linear layer with N parameters costs 2·N FLOPs per token it sees (forward).
- Attention costs 4·T·C·d per layer for T query tokens over C context tokens of width d
  (QKᵀ and AV); the language model attends over the whole padded sequence (C = T), a windowed
  vision block over its window (64 patches), a full-attention vision block over the image.
- Extraction is one forward: 2·N·T + attention, vision tower included (2·N_v per patch).
- An adaptation step with gradient checkpointing runs the language model's forward, its
  recomputation in backward and the backward: 2·N·T + 2·N·T + 2·N·T = 6·N·T for the frozen base
  weights (their backward is 2·N·T, input gradients only: frozen weights need no weight
  gradient, the other 2·N·T a trained layer would cost), 8·N·T for the adapter's own weights
  (forward, recompute, input and weight gradients), attention 4x its forward (forward,
  recompute, 2x in backward). The frozen vision tower costs the same 3x / 4x (its blocks are
  checkpointed too, and its merger runs forward and backward, its patch embedding forward only):
  transformers' `gradient_checkpointing_enable` calls `enable_input_require_grads`, whose hook
  makes the patch embedding's output require a gradient, so backward runs through the whole
  frozen tower although no weight there is trained. A forward-only tower would save that part
  (about 3% of a 7B step). tests/test_plan_costs.py checks both against torch's FlopCounterMode.
"""
from __future__ import annotations

import numpy as np

from harness.costs.architectures import EncoderShape, QwenVLShape


def attention(tokens, context, width: int, layers: int) -> float:
    return float(4.0 * np.sum(np.asarray(tokens, dtype=float) * np.asarray(context, dtype=float)) * width * layers)


def vision_parts(shape: QwenVLShape, patches) -> tuple[float, float, float, float]:
    """(patch embedding, block Linears, block attention, merger) forward FLOPs of the Qwen2.5-VL
    vision tower on images of `patches` patches each (14 x 14 px, 2 frames)."""
    p = np.asarray(patches, dtype=float)
    windowed = shape.vision_depth - shape.full_attention_blocks
    attn = attention(p, np.minimum(p, shape.window_patches), shape.vision_hidden, windowed) \
        + attention(p, p, shape.vision_hidden, shape.full_attention_blocks)
    return (2.0 * shape.vision_patch_embed * p.sum(), 2.0 * shape.vision_linear * p.sum(), attn,
            2.0 * shape.merger_linear * p.sum() / shape.merge ** 2)


def vision_forward(shape: QwenVLShape, patches) -> float:
    return sum(vision_parts(shape, patches))


def language_forward(shape: QwenVLShape, lengths) -> float:
    """The language model on sequences of `lengths` tokens (padded lengths: pads are computed too)."""
    t = np.asarray(lengths, dtype=float)
    return 2.0 * shape.lm_linear * t.sum() + attention(t, t, shape.hidden, shape.lm_layers)


def qwen_forward(shape: QwenVLShape, lengths, patches=()) -> float:
    """One forward (extraction) of sequences of `lengths` tokens holding images of `patches` patches."""
    return language_forward(shape, lengths) + vision_forward(shape, patches)


def adapt_step(shape: QwenVLShape, lengths, patches, adapter_params: int) -> float:
    """One training step with gradient checkpointing, frozen base, trained adapter (see above)."""
    t = np.asarray(lengths, dtype=float)
    base = 3 * 2.0 * shape.lm_linear * t.sum() + 4 * attention(t, t, shape.hidden, shape.lm_layers)
    embed, blocks, attn, merger = vision_parts(shape, patches)
    return base + 8.0 * adapter_params * t.sum() + embed + 3 * blocks + 4 * attn + 2 * merger


def encoder_forward(shape: EncoderShape, lengths, inputs: int | None = None) -> float:
    """A transformer encoder (CLIP tower, MiniLM) on sequences of `lengths` tokens."""
    t = np.asarray(lengths, dtype=float)
    count = len(t) if inputs is None else inputs
    return 2.0 * shape.linear * t.sum() + attention(t, t, shape.hidden, shape.layers) \
        + 2.0 * shape.extra * (t.sum() - count)  # a patch embedding sees every token but the class token


def recommender_epoch(dense_params: int, tokens: float) -> float:
    """One training epoch of a recommender: forward + backward of its dense weights (6·N per
    token), an upper bound since padding positions are counted as tokens."""
    return 6.0 * dense_params * tokens
