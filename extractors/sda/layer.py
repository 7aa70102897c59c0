"""The MoDA layer: a peft LoRA Linear whose rank is split into N_e experts mixed per modality.

MoDA's update for a sequence of modality m is (α/r) Σ_i ω_i^m B_i A_i dropout(x) with
A_i: d_in → r/N_e, B_i: r/N_e → d_out. Stacking the experts' factors gives peft's own LoRA
matrices, A = [A_1; ...; A_N] (lora_A: d_in → r) and B = [B_1 ... B_N] (lora_B: r → d_out), and

    Σ_i ω_i B_i A_i x = B (ω̃ ⊙ A x),   ω̃ = each ω_i repeated r/N_e times.

So MoDA is LoRA with a per-sequence scale on the rank dimension: peft creates, initialises,
saves, loads and freezes lora_A / lora_B exactly as for LoRA, and this file adds only the gate
(modality embedding → Linear(no bias) → softmax, one per adapted module) as a peft LoRA variant.
With N_e = 1 the softmax is 1 and the layer is LoRA.

Modality ids (0 image prompt, 1 text prompt; one per sequence) are set on every MoDA layer
by `set_modality` before each forward (model.py does it from the input ids with a hook). They
stay set until the next forward, so the recomputation that gradient checkpointing runs during
backward sees the same ids as the forward did.
"""
from __future__ import annotations

import torch
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.tuners.lora.layer import LoraVariant
from torch import nn


def expert_weights(module: "MoDALinear", adapter: str, modality: torch.Tensor) -> torch.Tensor:
    """ω^m for each sequence: (batch,) modality ids -> (batch, N_e), rows sum to 1."""
    embedding = module.lora_moda_embedding[adapter](modality)
    return torch.softmax(module.lora_moda_gate[adapter](embedding), dim=-1)


class MoDAVariant(LoraVariant):
    """peft calls `init` from update_layer and `forward` from its Linear.forward."""

    @staticmethod
    def init(module: "MoDALinear", adapter_name: str, config, **kwargs) -> None:
        if not hasattr(module, "lora_moda_gate"):
            # Names with peft's "lora_" prefix are what peft marks trainable, saves and loads.
            module.adapter_layer_names = module.adapter_layer_names[:] + ("lora_moda_embedding", "lora_moda_gate")
            module.lora_moda_embedding = nn.ModuleDict()
            module.lora_moda_gate = nn.ModuleDict()
        module.lora_moda_embedding[adapter_name] = nn.Embedding(config.num_modalities, config.gate_dim)
        module.lora_moda_gate[adapter_name] = nn.Linear(config.gate_dim, config.num_experts, bias=False)
        module._move_adapter_to_device_of_base_layer(adapter_name)

    @staticmethod
    def forward(module: "MoDALinear", active_adapter: str, x: torch.Tensor, result: torch.Tensor,
                **kwargs) -> torch.Tensor:
        modality = module.moda_modality
        if modality is None or modality.shape[0] != x.shape[0]:
            got = "none" if modality is None else f"{modality.shape[0]}"
            raise RuntimeError(f"MoDA layer got {x.shape[0]} sequences but modality ids for {got}; "
                               "call extractors.sda.layer.set_modality(model, ids) before the forward.")
        weights = expert_weights(module, active_adapter, modality)
        rank_weights = weights.repeat_interleave(module.r[active_adapter] // weights.shape[-1], dim=-1)
        hidden = module.lora_A[active_adapter](module.lora_dropout[active_adapter](x))
        # (batch, r) -> (batch, 1, ..., r): one gate per sequence, shared by all its tokens.
        hidden = hidden * rank_weights.view(x.shape[0], *[1] * (hidden.dim() - 2), -1).to(hidden.dtype)
        return result + module.lora_B[active_adapter](hidden) * module.scaling[active_adapter]

    @staticmethod
    def _no_merge(*args, **kwargs):
        raise ValueError("a MoDA update depends on each sequence's modality, so it cannot be merged "
                         "into the base weight; keep the adapter unmerged.")

    merge_safe = merge_unsafe = unmerge = _no_merge

    def supports_lora_conversion(self) -> bool:
        return False


class MoDALinear(LoraLinear):
    """peft's LoRA Linear with the MoDA variant; built by peft for targets of a MoDAConfig."""

    moda_modality: torch.Tensor | None = None

    @property
    def lora_variants(self):
        return {(): None, ("num_experts",): MoDAVariant}


def moda_layers(model: nn.Module) -> list[MoDALinear]:
    return [m for m in model.modules() if isinstance(m, MoDALinear)]


def set_modality(model: nn.Module, modality: torch.Tensor) -> None:
    """Give every MoDA layer of `model` the (batch,) modality ids of the next forward."""
    for layer in moda_layers(model):
        layer.moda_modality = modality
