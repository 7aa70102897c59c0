"""Peak GPU memory of the jobs (bytes), from the shapes and the batch.

- Weights: 2 bytes a parameter (bf16) for the backbone the extractor loads.
- Adapter training state: 16 bytes a trained parameter (fp32 weight, gradient and AdamW's two
  moments; peft keeps adapters in fp32).
- Adaptation activations with gradient checkpointing: each decoder layer's input kept (bf16,
  d a token), plus one layer's working set during its recomputation: bf16 tensors of
  7·d + 2·kv + 4·f a token (norms, q, k, v, attention output, residual, gate, up, activation,
  product) and the adapters' fp32 dropout copies of their inputs, 6·d + f a token;
  memory-efficient attention keeps no T x T scores. The vision tower's checkpoints likewise.
- Inference activations: the key/value cache (2·kv a token and layer, bf16) and one layer's
  working set; nothing is kept for backward.
"""
from __future__ import annotations

from harness.costs.architectures import QwenVLShape

BF16, FP32 = 2, 4
GB = 1e9


def weights(params: int) -> float:
    return BF16 * params


def adapter_state(params: int) -> float:
    return 4 * FP32 * params


def layer_working_set(shape: QwenVLShape, tokens: float) -> float:
    d, kv, f = shape.hidden, shape.kv_dim, shape.intermediate
    return tokens * (BF16 * (7 * d + 2 * kv + 4 * f) + FP32 * (6 * d + f))


def adapt_activations(shape: QwenVLShape, tokens: float, patches: float) -> float:
    """`tokens`: sequences x padded length of a step; `patches`: the step's image patches."""
    checkpoints = BF16 * shape.lm_layers * tokens * shape.hidden \
        + BF16 * shape.vision_depth * patches * shape.vision_hidden
    return checkpoints + layer_working_set(shape, tokens)


def inference_activations(shape: QwenVLShape, tokens: float) -> float:
    cache = BF16 * 2 * shape.kv_dim * shape.lm_layers * tokens
    d, f = shape.hidden, shape.intermediate
    return cache + BF16 * tokens * (4 * d + 3 * f)
