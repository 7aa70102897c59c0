"""GPU check: the paper profile's heavy steps on the real architectures with random weights.

    .venv/bin/python benchmarks/gpu_check.py [--gpu h100] [--dataset beauty] [--out CSV]
    .venv/bin/python benchmarks/gpu_check.py --tiny      # CPU, tiny shapes, seconds (the test)

Builds Qwen2.5-VL-7B-Instruct's backbone and CLIP ViT-L/14 from configs/architectures/*.json
directly on the device in bf16 (random weights; nothing is downloaded) and measures:
- extract_qwen: extraction items/s, an item being one image prompt and one text prompt, batches
  of the paper profile's batch size at the data's prompt lengths and image sizes (the plan's own
  token model, harness/costs/data.py);
- adapt_step: one SDA step (MoDA on every language-model Linear, CMSA, AdamW, gradient
  checkpointing; extractors/sda) of batch_items items = 2 x batch_items sequences padded together,
  its seconds and peak memory;
- clip_image: CLIP ViT-L/14 image embeddings a second.
Each row's model FLOP utilisation is the cost model's FLOPs (harness/costs/flops.py) over the
seconds and the GPU's peak bf16 FLOP/s. Writes results/benchmarks/gpu_check.csv, which
`python -m harness plan` reads for its utilisation. docs/benchmarks.md: how to run, numbers.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness.costs import data as costdata
from harness.costs import flops
from harness.costs.architectures import build, clip_shapes, load_config, lora_params, qwen_shape
from harness.costs.gpus import GPUS
from protocol.config import results_dir
from protocol.errors import HarnessError
from protocol.fileio import atomic_path

TIMED = 3  # timed repetitions after one warm-up


def qwen_config(tiny: bool):
    if not tiny:
        return load_config("qwen2.5-vl-7b-instruct")
    from extractors.tiny import QWEN_SPECIAL_TOKENS, tiny_qwen_config

    vocab = {t: i for i, t in enumerate(QWEN_SPECIAL_TOKENS + [f"w{i}" for i in range(256)])}
    return tiny_qwen_config(vocab)


def clip_model(tiny: bool, device, dtype):
    from transformers import CLIPConfig, CLIPModel

    if tiny:
        layer = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
        config = CLIPConfig(text_config=dict(vocab_size=300, bos_token_id=0, eos_token_id=1, pad_token_id=1, **layer),
                            vision_config=dict(image_size=32, patch_size=8, **layer), projection_dim=32)
    else:
        config = build("clip-vit-large-patch14").config
    with torch.device(device):
        return CLIPModel._from_config(config, dtype=dtype).eval()


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, fn) -> float:
    """Seconds of one call of `fn`, the mean of TIMED calls after a warm-up."""
    fn()
    sync(device)
    began = time.perf_counter()
    for _ in range(TIMED):
        fn()
    sync(device)
    return (time.perf_counter() - began) / TIMED


class Prompts:
    """Random-token model inputs of given lengths, image prompts holding a real image grid."""

    def __init__(self, config, device, dtype, seed: int = 0):
        self.config, self.device, self.dtype = config, device, dtype
        self.rng = np.random.default_rng(seed)
        vocab = config.text_config.vocab_size
        self.low, self.high = 8, min(vocab, 150_000)  # plain tokens: clear of the special ids

    def batch(self, lengths: list[int], grids: list[tuple[int, int]] | None = None) -> dict:
        """Left-padded sequences of `lengths` tokens; with `grids` (patch rows, columns), each
        sequence starts with an image of that grid."""
        c, longest = self.config, max(lengths)
        ids = np.full((len(lengths), longest), c.text_config.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, n in enumerate(lengths):
            tokens = self.rng.integers(self.low, self.high, n)
            if grids:
                image = grids[row][0] * grids[row][1] // c.vision_config.spatial_merge_size ** 2
                tokens[5] = c.vision_start_token_id
                tokens[6:6 + image] = c.image_token_id
                tokens[6 + image] = c.vision_end_token_id
            ids[row, longest - n:], mask[row, longest - n:] = tokens, 1
        inputs = {"input_ids": torch.from_numpy(ids).to(self.device),
                  "attention_mask": torch.from_numpy(mask).to(self.device)}
        if grids:
            v = c.vision_config
            patches = sum(h * w for h, w in grids)
            width = 3 * v.temporal_patch_size * v.patch_size ** 2
            inputs["pixel_values"] = torch.randn(patches, width, device=self.device, dtype=self.dtype)
            inputs["image_grid_thw"] = torch.tensor([[1, h, w] for h, w in grids], device=self.device)
        return inputs


def prompt_lengths(dataset: str, tiny: bool, vision) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(text prompt tokens, image prompt tokens, image grid) of the data set, from the cost model."""
    from extractors.prompts import IMAGE_PROMPT, TEXT_PREFIX

    try:
        stats = costdata.data_stats(dataset, "paper")
    except HarnessError:  # no ../shared beside this checkout: a title-sized prompt, 300 px images
        side = costdata.ASSUMED_IMAGE_SIDE
        stats = costdata.DataStats(dataset, 0, 0, 0, None, [], "none", np.array([[side, side]]), "assumed")
    if tiny:
        stats.metas = stats.metas[:64]
    patches = costdata.image_grid(stats, 400, 65536, vision.patch_size, vision.spatial_merge_size)
    side = int(round(np.sqrt(np.median(patches))))
    side -= side % vision.spatial_merge_size
    grid = (side, side)
    text = costdata.qwen_text_lengths(stats, dataset, TEXT_PREFIX)
    image = costdata.qwen_image_lengths(stats, dataset, IMAGE_PROMPT, np.array([side * side]))
    return text.astype(int), image.astype(int), grid


def check_extraction(model, shape, prompts, text, image, grid, batch, device) -> dict:
    rng = np.random.default_rng(1)
    texts = sorted(rng.choice(text, batch))  # a length-sorted batch, as the extractor forms them
    images = [int(image[0])] * batch
    text_inputs, image_inputs = prompts.batch(texts), prompts.batch(images, [grid] * batch)

    @torch.no_grad()
    def step():
        model(**image_inputs)
        model(**text_inputs)

    seconds = timed(device, step)
    work = (flops.qwen_forward(shape, [max(texts)] * batch)  # the text batch is padded to its longest
            + flops.qwen_forward(shape, images, [grid[0] * grid[1]] * batch))
    return {"what": "extract_qwen", "batch": batch, "tokens": int(sum(texts) + sum(images)), "seconds": seconds,
            "items_per_s": batch / seconds, "flops": work}


def check_adapt(model, shape, prompts, text, image, grid, batch_items, device) -> dict:
    from extractors.sda.loss import AlignmentLoss
    from extractors.sda.model import add_adapter
    from extractors.sda.train import DEFAULTS, Aligner

    settings = dict(DEFAULTS, cmsa_dim=min(DEFAULTS["cmsa_dim"], shape.hidden))
    adapted = add_adapter(model, settings)
    adapted.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    adapted.get_base_model().config.get_text_config().use_cache = False
    aligner = Aligner(adapted, AlignmentLoss("cmsa", settings["cmsa_dim"], settings["tau"]).to(device)).train()
    params = [p for p in aligner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings["lr"], weight_decay=0.0)
    rng = np.random.default_rng(2)
    longest = int(rng.choice(text, batch_items).max())  # the step's longest text prompt
    inputs = _step_inputs(prompts, image[0], longest, grid, batch_items)

    def step():
        loss = aligner(inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings["clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(device, step)
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else float("nan")
    lengths = [inputs["input_ids"].shape[1]] * (2 * batch_items)
    work = flops.adapt_step(shape, lengths, [grid[0] * grid[1]] * batch_items, lora_params(shape, settings["rank"]))
    return {"what": "adapt_step", "batch": 2 * batch_items, "tokens": int(sum(lengths)), "seconds": seconds,
            "items_per_s": batch_items / seconds, "flops": work, "peak_memory_gb": peak}


def _step_inputs(prompts, image_length: int, longest: int, grid, batch_items: int) -> dict:
    """A training step's batch: image prompts then text prompts, left-padded to one length."""
    images = prompts.batch([int(image_length)] * batch_items, [grid] * batch_items)
    texts = prompts.batch([longest] * batch_items)
    width = max(images["input_ids"].shape[1], texts["input_ids"].shape[1])

    def pad(t, value):
        return torch.nn.functional.pad(t, (width - t.shape[1], 0), value=value)

    pad_id = prompts.config.text_config.pad_token_id or 0
    return {"input_ids": torch.cat([pad(images["input_ids"], pad_id), pad(texts["input_ids"], pad_id)]),
            "attention_mask": torch.cat([pad(images["attention_mask"], 0), pad(texts["attention_mask"], 0)]),
            "pixel_values": images["pixel_values"], "image_grid_thw": images["image_grid_thw"]}


def check_clip(tiny: bool, batch: int, device, dtype) -> dict:
    model = clip_model(tiny, device, dtype)
    vision = model.config.vision_config
    pixels = torch.randn(batch, 3, vision.image_size, vision.image_size, device=device, dtype=dtype)

    @torch.no_grad()
    def step():
        model.get_image_features(pixel_values=pixels)

    seconds = timed(device, step)
    tokens = (vision.image_size // vision.patch_size) ** 2 + 1
    work = flops.encoder_forward(clip_shapes(model)["image"], [tokens] * batch)
    return {"what": "clip_image", "batch": batch, "tokens": tokens * batch, "seconds": seconds,
            "items_per_s": batch / seconds, "flops": work}


def gpu_name(device, kind: str | None) -> tuple[str, float | None]:
    """(device name, peak bf16 FLOP/s) for the MFU; none on a CPU."""
    if device.type != "cuda":
        return platform.processor() or "cpu", None
    name = torch.cuda.get_device_name(device)
    kind = kind or next((k for k in GPUS if k.split("-")[0] in name.lower()), None)
    return name, (GPUS[kind][0] * 1e12 if kind else None)


def run(tiny: bool, dataset: str, kind: str | None, out) -> pd.DataFrame:
    from transformers import Qwen2_5_VLModel

    device = torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    config = qwen_config(tiny)
    began = time.perf_counter()
    with torch.device(device):
        model = Qwen2_5_VLModel._from_config(config, dtype=dtype).eval()
    built = time.perf_counter() - began
    shape = qwen_shape(model)
    text, image, grid = prompt_lengths(dataset, tiny, config.vision_config)
    prompts = Prompts(config, device, dtype)
    batch, batch_items = (4, 4) if tiny else (16, 32)  # the paper profile's extraction batch and step
    rows = [check_extraction(model, shape, prompts, text, image, grid, batch, device),
            check_adapt(model, shape, prompts, text, image, grid, batch_items, device)]
    del model
    rows.append(check_clip(tiny, 8 if tiny else 64, device, dtype))
    name, peak = gpu_name(device, kind)
    table = pd.DataFrame(rows)
    table["tflops"] = table["flops"] / table["seconds"] / 1e12
    table["mfu"] = table["flops"] / table["seconds"] / peak if peak else float("nan")
    table = table.assign(device=name, tiny=tiny, dtype=str(dtype).replace("torch.", ""), dataset=dataset,
                         build_seconds=built, date=time.strftime("%Y-%m-%d"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU (the test suite's run)")
    parser.add_argument("--dataset", default="beauty", help="whose prompt lengths and image sizes (default beauty)")
    parser.add_argument("--gpu", default=None, help="GPU kind for the peak FLOP/s (default: from the device name)")
    parser.add_argument("--out", default=None, help="CSV path (default results/benchmarks/gpu_check.csv)")
    args = parser.parse_args(argv)
    # A tiny run never replaces the GPU numbers the plan reads.
    name = "gpu_check_tiny.csv" if args.tiny else "gpu_check.csv"
    out = Path(args.out) if args.out else results_dir() / "benchmarks" / name
    table = run(args.tiny, args.dataset, args.gpu, out)
    print(table[["what", "device", "batch", "tokens", "seconds", "items_per_s", "tflops", "mfu",
                 "peak_memory_gb"]].to_string(index=False))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
