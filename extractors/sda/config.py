"""MoDA's adapter config: peft's LoraConfig plus the number of experts and the gate's size.

MoDA is a LoRA variant in peft's own sense (see layer.py), so it keeps LoRA's config, target
matching, saving and loading; `num_experts` is tagged `is_lora_variant`, which is how peft's
layers pick a variant's forward from the config.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from peft import LoraConfig
from torch import nn

# Every Linear inside the language model's decoder layers (attention and MLP) of Qwen2-VL /
# Qwen2.5-VL, as a regex peft matches against full module names. Spelled out per projection
# because the vision tower's blocks also hold gate_proj/up_proj/down_proj and must stay frozen,
# and `mlp.act_fn` is no Linear. lm_head is outside the language model and not adapted (the
# authors' 20,185,088 low-rank weights for the 7B model count exactly these seven per layer).
LANGUAGE_MODEL_LINEARS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@dataclass
class MoDAConfig(LoraConfig):
    """LoRA's settings (r, lora_alpha, lora_dropout, target_modules, ...) plus MoDA's gate."""

    num_experts: int = field(default=8, metadata={
        "help": "N_e experts of rank r / N_e each; N_e = 1 is LoRA with a constant gate.",
        "is_lora_variant": True})
    gate_dim: int = field(default=64, metadata={"help": "size of each module's modality embedding"})
    num_modalities: int = field(default=2, metadata={"help": "modality ids 0 .. num_modalities-1"})

    def __post_init__(self):
        super().__post_init__()
        if self.num_experts < 1 or self.r % self.num_experts:
            raise ValueError(f"r = {self.r} must be a positive multiple of num_experts = {self.num_experts}")
        from extractors.sda.layer import MoDALinear

        # peft builds MoDALinear instead of its own Linear for every targeted nn.Linear.
        self._register_custom_module({nn.Linear: MoDALinear})


def load_config(adapter_dir: Path) -> LoraConfig:
    """The saved adapter's config as MoDAConfig or LoraConfig.

    PeftConfig.from_pretrained maps peft_type LORA back to LoraConfig and would drop MoDA's
    fields, so the class is chosen here from the saved keys.
    """
    values = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    cls = MoDAConfig if "num_experts" in values else LoraConfig
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in values.items() if k in names})
