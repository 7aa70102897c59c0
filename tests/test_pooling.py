"""Masked mean pooling ignores padding; PCA per modality has the right shape and is reproducible."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.pooling import masked_mean, pca_reduce
from protocol.errors import HarnessError


def test_masked_mean_ignores_pad_positions():
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    pooled = masked_mean(hidden, mask)
    assert torch.allclose(pooled[0], hidden[0, 1:].mean(dim=0))
    assert torch.allclose(pooled[1], hidden[1].mean(dim=0))
    hidden[0, 0] = 1e6  # whatever sits at a pad position does not count
    assert torch.allclose(masked_mean(hidden, mask)[0], pooled[0])


def test_masked_mean_accumulates_bf16_in_float32():
    hidden = torch.full((1, 4, 2), 1.0078125, dtype=torch.bfloat16)
    out = masked_mean(hidden, torch.ones(1, 4, dtype=torch.long))
    assert out.dtype == torch.float32 and torch.allclose(out, torch.full((1, 2), 1.0078125))


@pytest.fixture(scope="module")
def tiny_qwen():
    from extractors.qwenvl import load_model, load_processor
    from extractors.weights import resolve_weights

    folder = resolve_weights("tiny:tiny-qwen2.5-vl")
    cpu = torch.device("cpu")
    return load_model(folder, cpu, torch.float32), load_processor(folder, 400, 65536)


def test_left_padded_batch_gives_the_item_alone(tiny_qwen):
    """The real forward pass: a short item padded on the left next to a long one is unchanged."""
    from extractors import prompts
    from extractors.images import noise_image
    from extractors.qwenvl import batch_inputs, chat_text, pooled_hidden
    from protocol.data.render import render_image

    model, processor = tiny_qwen
    cpu = torch.device("cpu")
    long = chat_text(processor, prompts.text_messages(prompts.text_prompt(
        {"title": "Deluxe organic lavender body lotion collection", "brand": "Rose", "price": 12.5}, "beauty")))
    short = chat_text(processor, prompts.text_messages(prompts.text_prompt({"title": "Soap"}, "beauty")))
    with torch.no_grad():
        batch_inputs_ = batch_inputs(processor, [long, short], None, cpu, torch.float32)
        assert batch_inputs_["attention_mask"][1, 0] == 0  # the short one is padded on the left
        batch = pooled_hidden(model, batch_inputs_)
        alone = pooled_hidden(model, batch_inputs(processor, [short], None, cpu, torch.float32))
        assert torch.allclose(batch[1], alone[0], atol=1e-5)
        # Images of different sizes give different token counts: padding again.
        chat = chat_text(processor, prompts.image_messages(prompts.image_prompt("beauty")))
        images = [noise_image(), render_image("soap", "")]
        batch = pooled_hidden(model, batch_inputs(processor, [chat, chat], images, cpu, torch.float32))
        alone = pooled_hidden(model, batch_inputs(processor, [chat], images[1:], cpu, torch.float32))
    assert torch.allclose(batch[1], alone[0], atol=1e-5)


def test_pca_shape_and_determinism():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((200, 64)).astype(np.float32) @ rng.standard_normal((64, 64)).astype(np.float32)
    first, summary = pca_reduce(matrix, 16)
    second, _ = pca_reduce(matrix.copy(), 16)
    assert first.shape == (200, 16) and first.dtype == np.float32
    assert np.array_equal(first, second)
    assert summary["raw_dim"] == 64 and summary["dim"] == 16 and 0 < summary["explained_variance"] <= 1
    # Components come in order of explained variance.
    assert np.all(np.diff(first.var(axis=0)) <= 1e-4)


def test_pca_refuses_more_dimensions_than_the_data_has():
    with pytest.raises(HarnessError, match="set pca_dim to at most 10"):
        pca_reduce(np.ones((10, 64), dtype=np.float32), 32)
