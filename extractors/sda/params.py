"""Adapter parameter counts: by formula from a model config (no weights), and by counting.

Per adapted Linear d_in -> d_out: the low-rank factors hold r (d_in + d_out) weights for LoRA and
for MoDA alike (MoDA's N_e experts of rank r/N_e stack to one rank-r pair, see layer.py); MoDA
adds a gate of num_modalities · gate_dim + gate_dim · N_e. For Qwen2.5-VL-7B (28 layers, hidden
3584, MLP 18944, 4 KV heads of 128), r = 8, N_e = 8: 20,185,088 + 125,440, the authors' numbers.
"""
from __future__ import annotations

from torch import nn


def adapted_shapes(text_config) -> list[tuple[int, int]]:
    """(d_in, d_out) of every adapted Linear of a Qwen2-style language model, in module order."""
    hidden, mlp = text_config.hidden_size, text_config.intermediate_size
    head_dim = getattr(text_config, "head_dim", None) or hidden // text_config.num_attention_heads
    q_dim = text_config.num_attention_heads * head_dim
    kv_dim = text_config.num_key_value_heads * head_dim
    layer = [(hidden, q_dim), (hidden, kv_dim), (hidden, kv_dim), (q_dim, hidden),  # q k v o
             (hidden, mlp), (hidden, mlp), (mlp, hidden)]  # gate up down
    return layer * text_config.num_hidden_layers


def parameter_counts(text_config, adapter: str, rank: int, experts: int, gate_dim: int = 64,
                     modalities: int = 2) -> dict[str, int]:
    shapes = adapted_shapes(text_config)
    low_rank = sum(rank * (d_in + d_out) for d_in, d_out in shapes)
    gate = len(shapes) * (modalities * gate_dim + gate_dim * experts) if adapter == "moda" else 0
    return {"modules": len(shapes), "low_rank": low_rank, "gate": gate, "total": low_rank + gate}


def count_parameters(model: nn.Module) -> dict[str, int]:
    """The same counts taken from an adapted model's actual parameters."""
    counts = {"modules": 0, "low_rank": 0, "gate": 0}
    for name, param in model.named_parameters():
        if ".lora_A." in name:
            counts["modules"] += 1
        if ".lora_A." in name or ".lora_B." in name:
            counts["low_rank"] += param.numel()
        elif ".lora_moda_" in name:
            counts["gate"] += param.numel()
    return counts | {"total": counts["low_rank"] + counts["gate"]}


def describe(counts: dict[str, int]) -> str:
    text = f"{counts['low_rank']:,} low-rank weights in {counts['modules']} modules"
    return text + (f" + {counts['gate']:,} gate parameters" if counts["gate"] else "")
