"""MoDA on the tiny offline Qwen2.5-VL with real mini Toys prompts: the Must-show properties."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from extractors import qwenvl
from extractors.sda.layer import MoDALinear, moda_layers
from extractors.sda.loss import AlignmentLoss
from extractors.sda.model import IMAGE, TEXT, add_adapter, load_adapter
from extractors.sda.train import item_inputs

CPU, FP32 = torch.device("cpu"), torch.float32


@pytest.fixture(scope="module")
def setup(toys):
    """(settings, model folder, processor, inputs: 4 items' image prompts then their text prompts)."""
    from extractors.store import make_extractor

    settings = make_extractor("sda", toys, "mini").settings()
    folder = qwenvl.resolve_weights(settings["model"], settings["revision"], "sda")
    processor = qwenvl.load_processor(folder, settings["min_pixels"], settings["max_pixels"])
    texts, image = qwenvl.item_chats(processor, toys, settings)
    inputs = item_inputs(processor, toys, {"text": texts, "image": image}, np.arange(4), CPU, FP32)
    return settings, folder, inputs


def base_model(folder):
    return qwenvl.load_model(folder, CPU, FP32)


def adapted(setup, seed=0, **changes):
    """A fresh adapter (settings `changes`) with random B, so it changes the outputs.

    peft builds its dropout modules in training mode: call .eval() for deterministic outputs.
    """
    settings, folder, _ = setup
    torch.manual_seed(seed)
    model = add_adapter(base_model(folder), settings | changes)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(param, std=0.05)
    return model


def pooled(model, inputs, grad=False):
    with torch.set_grad_enabled(grad):
        return qwenvl.pooled_hidden(model, inputs)


def test_fresh_adapter_leaves_the_outputs_unchanged(setup):
    settings, folder, inputs = setup
    base = base_model(folder)
    before = pooled(base, inputs)
    model = add_adapter(base, settings)
    assert all((layer.lora_B["default"].weight == 0).all() for layer in moda_layers(model))
    assert torch.equal(pooled(model, inputs), before)


def test_every_language_model_linear_is_adapted_and_the_vision_tower_is_not(setup):
    settings, folder, _ = setup
    base = base_model(folder)
    linears = {n for n, m in base.named_modules() if isinstance(m, nn.Linear)}
    language = {n for n in linears if n.startswith("language_model.")}
    vision = {n for n in linears if n.startswith("visual.")}
    assert language and vision and linears == language | vision
    model = add_adapter(base, settings)
    wrapped = {n.removeprefix("base_model.model.") for n, m in model.named_modules() if isinstance(m, MoDALinear)}
    assert wrapped == language
    assert not any(n.startswith("visual.") for n, p in model.named_parameters() if p.requires_grad)


def test_modality_ids_come_from_the_prompts(setup):
    model = adapted(setup)
    pooled(model, setup[2])
    expected = torch.tensor([IMAGE] * 4 + [TEXT] * 4)
    assert all(torch.equal(layer.moda_modality, expected) for layer in moda_layers(model))


def test_only_adapter_parameters_and_tau_get_gradients(setup):
    settings = setup[0]
    model = adapted(setup)
    loss = AlignmentLoss(settings["loss"], settings["cmsa_dim"], settings["tau"])
    states = pooled(model, setup[2], grad=True)
    loss(states[:4], states[4:]).backward()
    assert loss.tau.grad is not None
    for name, param in model.named_parameters():
        if "lora_" in name:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert not param.requires_grad and param.grad is None, name


def test_one_expert_moda_is_lora(setup):
    moda = adapted(setup, experts=1).eval()
    lora = adapted(setup, seed=1, adapter="lora").eval()
    moda_weights = {n: p for n, p in moda.named_parameters() if "lora_A" in n or "lora_B" in n}
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if name in moda_weights:
                param.copy_(moda_weights[name])
    assert sum("lora_" in n for n, _ in lora.named_parameters()) == len(moda_weights)
    torch.testing.assert_close(pooled(moda, setup[2]), pooled(lora, setup[2]), rtol=1e-6, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients(setup):
    def gradients(checkpointing):
        model = adapted(setup, dropout=0.0).train()
        if checkpointing:
            model.get_base_model().gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        states = pooled(model, setup[2], grad=True)
        (states[:4] * states[4:]).sum().backward()
        return {n: p.grad for n, p in model.named_parameters() if p.requires_grad}

    plain, checkpointed = gradients(False), gradients(True)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=name)


def test_save_then_load_gives_identical_embeddings(setup, tmp_path):
    model = adapted(setup).eval()
    before = pooled(model, setup[2])
    model.save_pretrained(tmp_path)
    loaded = load_adapter(base_model(setup[1]), tmp_path)
    assert torch.equal(pooled(loaded, setup[2]), before)
    assert not torch.equal(pooled(base_model(setup[1]), setup[2]), before)
