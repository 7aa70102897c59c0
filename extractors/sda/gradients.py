"""Gradient conflict between modalities: does one adapter serve image and text prompts at odds?

For a trained adapter and an item batch, the CMSA loss is differentiated twice from one forward:
image-only (text embeddings detached) and text-only (image embeddings detached). The cosine
between the two gradients of lora_B in q_proj and k_proj of the last decoder layer is taken
over LoRA's whole B and over MoDA's first expert B_1 (its first r/N_e columns), and averaged
over batches. The paper reports LoRA -0.0955 / -0.0705 and MoDA 0.4422 / 0.7096 (q / k).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from extractors import qwenvl
from extractors.sda.loss import AlignmentLoss
from extractors.sda.model import load_adapter
from extractors.sda.store import adapter_key, adapter_meta, ensure_adapter
from extractors.sda.train import item_inputs, step_items
from protocol.threads import torch_threads

MODULES = ("q_proj", "k_proj")
PAPER = {("lora", "q_proj"): -0.0955, ("lora", "k_proj"): -0.0705,
         ("moda", "q_proj"): 0.4422, ("moda", "k_proj"): 0.7096}


def last_layer_b(model, module: str) -> torch.nn.Parameter:
    layer = model.get_base_model().language_model.layers[-1]
    return getattr(layer.self_attn, module).lora_B["default"].weight


def modality_cosines(model, loss: AlignmentLoss, inputs, weights: list, columns: int) -> list[float]:
    """Cosine of image-only and text-only gradients on the first `columns` columns of each weight."""
    states = qwenvl.pooled_hidden(model, inputs)
    n = len(states) // 2
    image, text = states[:n], states[n:]
    image_grads = torch.autograd.grad(loss(image, text.detach()), weights, retain_graph=True)
    text_grads = torch.autograd.grad(loss(image.detach(), text), weights)
    return [float(torch.nn.functional.cosine_similarity(
                gi[:, :columns].flatten().double(), gt[:, :columns].flatten().double(), dim=0))
            for gi, gt in zip(image_grads, text_grads)]


def gradient_conflict(dataset, settings_by_adapter: dict[str, dict], batches: int,
                      progress: bool = True) -> pd.DataFrame:
    """One row per (adapter, module): mean and std of the cosine over `batches` item batches."""
    from extractors.weights import resolve_weights

    rows = []
    for adapter, s in settings_by_adapter.items():
        path = ensure_adapter(dataset, s, progress)
        trained = adapter_meta(path)
        device = qwenvl.resolve_device(s["device"])
        dtype = qwenvl.resolve_dtype(s["dtype"], device)
        folder = resolve_weights(s["model"], s["revision"], "sda")
        processor = qwenvl.load_processor(folder, s["min_pixels"], s["max_pixels"])
        model = load_adapter(qwenvl.load_model(folder, device, dtype), path, trainable=True).eval()
        loss = AlignmentLoss(s["loss"], s["cmsa_dim"], trained["tau"]).to(device)
        weights = [last_layer_b(model, m) for m in MODULES]
        # LoRA: all r columns of B; MoDA: expert 1's r / N_e columns.
        columns = s["rank"] if adapter == "lora" else s["rank"] // s["experts"]
        text_chats, image_chat = qwenvl.item_chats(processor, dataset, s)
        chats = {"text": text_chats, "image": image_chat}
        cosines = []
        with torch_threads(s["cpu_threads"]):
            for batch in range(batches):
                items = step_items(dataset.n_items, s["batch_items"], s["seed"], batch)
                inputs = item_inputs(processor, dataset, chats, items, device, dtype)
                cosines.append(modality_cosines(model, loss, inputs, weights, columns))
        cosines = np.array(cosines)
        for k, module in enumerate(MODULES):
            rows.append({"dataset": dataset.name, "data_hash": dataset.content_hash, "adapter": adapter, "module": module,
                         "part": "B" if adapter == "lora" else "B_1 (first expert)",
                         "cosine": cosines[:, k].mean(), "std": cosines[:, k].std(), "batches": batches,
                         "paper": PAPER[(adapter, module)], "adapter_key": adapter_key(dataset, s)})
    return pd.DataFrame(rows)
