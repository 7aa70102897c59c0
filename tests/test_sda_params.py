"""Adapter parameter counts: the formula against real parameters, and the authors' 7B numbers."""
from __future__ import annotations

import pytest
import torch

from extractors.sda.model import add_adapter
from extractors.sda.params import count_parameters, parameter_counts
from extractors.sda.train import DEFAULTS

# The recipe's own shape (r, α, dropout, gate size), so the 7B numbers below check the recipe too.
SETTINGS = {k: DEFAULTS[k] for k in ("rank", "alpha", "dropout", "gate_dim")}
# Qwen2.5-VL-7B-Instruct's published language-model dims (config.json), no weights needed.
QWEN25_VL_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                    num_attention_heads=28, num_key_value_heads=4, vocab_size=152064)


@pytest.fixture(scope="module")
def tiny_folder():
    from extractors.weights import resolve_weights

    return resolve_weights("tiny:tiny-qwen2.5-vl")


@pytest.mark.parametrize("adapter,experts", [("moda", 8), ("moda", 2), ("lora", 1)])
def test_formula_counts_the_tiny_models_real_parameters(tiny_folder, adapter, experts):
    from transformers import Qwen2_5_VLModel

    base = Qwen2_5_VLModel.from_pretrained(tiny_folder)
    real = count_parameters(add_adapter(base, SETTINGS | {"adapter": adapter, "experts": experts}))
    assert real == parameter_counts(base.config.text_config, adapter, DEFAULTS["rank"], experts,
                                    DEFAULTS["gate_dim"])
    assert real["modules"] == 7 * base.config.text_config.num_hidden_layers


def test_qwen2_5_vl_7b_numbers_from_its_config():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel

    config = Qwen2_5_VLConfig(text_config=QWEN25_VL_7B)
    counts = parameter_counts(config.text_config, "moda", DEFAULTS["rank"], DEFAULTS["experts"], DEFAULTS["gate_dim"])
    assert (counts["low_rank"], counts["gate"]) == (20_185_088, 125_440)  # the authors' numbers
    assert parameter_counts(config.text_config, "lora", DEFAULTS["rank"], DEFAULTS["experts"])["total"] == 20_185_088
    # The same numbers from the real architecture built on the meta device (no memory, no weights).
    with torch.device("meta"):
        base = Qwen2_5_VLModel(config)
    real = count_parameters(add_adapter(base, SETTINGS | {"adapter": "moda", "experts": DEFAULTS["experts"]}))
    assert real == counts
