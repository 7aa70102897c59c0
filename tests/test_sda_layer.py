"""The MoDA layer on small Linear modules: the expert sum, the gate, peft's mechanics, errors."""
from __future__ import annotations

import pytest
import torch
from peft import get_peft_model
from torch import nn

from extractors.sda.config import MoDAConfig, load_config
from extractors.sda.layer import MoDALinear, expert_weights, moda_layers, set_modality


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def moda(experts=4, seed=0):
    torch.manual_seed(seed)
    model = get_peft_model(Two(), MoDAConfig(r=8, lora_alpha=32, lora_dropout=0.0,
                                             target_modules=["a", "b"], num_experts=experts))
    for layer in moda_layers(model):  # B = 0 at init; random B to see the update
        nn.init.normal_(layer.lora_B["default"].weight)
    return model


def test_output_is_the_gated_sum_of_experts():
    """W0 x + (α/r) Σ_i ω_i^m B_i A_i x, with each expert's r/N_e slice written out."""
    model = moda(experts=4)
    layer = model.base_model.model.a
    x = torch.randn(3, 5, 8)
    modality = torch.tensor([0, 1, 1])
    set_modality(model, modality)
    got = layer(x)
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    weights = expert_weights(layer, "default", modality)
    expected = layer.base_layer(x)
    for i in range(4):
        cols = slice(2 * i, 2 * i + 2)
        update = x @ A[cols].T @ B[:, cols].T
        expected = expected + (32 / 8) * weights[:, i, None, None] * update
    torch.testing.assert_close(got, expected)
    assert torch.allclose(weights.sum(-1), torch.ones(3))


def test_each_sequence_uses_its_own_modality():
    model = moda()
    x = torch.randn(2, 5, 8)
    set_modality(model, torch.tensor([0, 1]))
    mixed = model(x)
    set_modality(model, torch.tensor([0, 0]))
    as_image = model(x)
    set_modality(model, torch.tensor([1, 1]))
    as_text = model(x)
    torch.testing.assert_close(mixed[0], as_image[0])
    torch.testing.assert_close(mixed[1], as_text[1])
    assert not torch.allclose(as_image[1], as_text[1])


def test_peft_saves_and_loads_the_gate(tmp_path):
    model = moda()
    model.save_pretrained(tmp_path)
    config = load_config(tmp_path)
    assert isinstance(config, MoDAConfig) and config.num_experts == 4
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_moda_gate" in n for n in trainable) and any("lora_moda_embedding" in n for n in trainable)
    assert all("lora_" in n for n in trainable)


def test_mistakes_are_refused():
    model = moda()
    layer = model.base_model.model.a
    assert isinstance(layer, MoDALinear)
    set_modality(model, None)
    with pytest.raises(RuntimeError, match="set_modality"):
        model(torch.randn(2, 5, 8))
    set_modality(model, torch.tensor([0, 1, 0]))
    with pytest.raises(RuntimeError, match="got 2 sequences but modality ids for 3"):
        model(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="cannot be merged"):
        layer.merge()
    with pytest.raises(ValueError, match="multiple of num_experts"):
        MoDAConfig(r=8, num_experts=3, target_modules=["a"])
