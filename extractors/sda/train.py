"""adapt: train a MoDA (or LoRA) adapter with CMSA (or InfoNCE) on a data set's items.

DESIGN's recipe: AdamW (lr 2e-4, weight decay 0) on the adapter and τ, linear decay to 0 without
warm-up, gradient clipping at 1.0, gradient checkpointing, bf16 base weights on GPU (fp32
adapters, as peft keeps them), `batch_items` items per step = 2 × batch_items sequences (each
item's image prompt and text prompt in one forward, so every adapted layer sees both
modalities of a step with its ids). A plain loop in nanoGPT's manner: under `torchrun` every
process takes batch_items / world of each step's items and DistributedDataParallel averages the
gradients (CMSA's in-batch targets are then each process's items; docs/sda.md).

Every step's items and dropout masks follow from (seed, step), so a run resumed from its last
checkpoint ends with the same adapter as an uninterrupted one.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from extractors import qwenvl
from extractors.images import load_images
from extractors.sda.loss import LOSSES, AlignmentLoss
from extractors.sda.model import ADAPTERS, add_adapter
from extractors.shards import Ranks, barrier
from protocol.config import DROPOUT, NON_NEGATIVE, POSITIVE, SIZE, at_least
from protocol.errors import HarnessError
from protocol.fileio import atomic_dir, atomic_path, write_json

# DESIGN's recipe and MoDA's shape (r = 8, α = 32, dropout 0.1, N_e = 8, gate 2 × 64); the
# extractor's settings beside Qwen-VL's, overridden by configs/extractors/sda*.yaml and the CLI.
DEFAULTS = {
    "adapter": "moda",         # moda | lora (the "w/o MoDA" ablation)
    "experts": 8,              # N_e (MoDA only); Figure 4 varies it over 1, 2, 4, 8
    "rank": 8,
    "alpha": 32,
    "dropout": 0.1,
    "gate_dim": 64,
    "loss": "cmsa",            # cmsa | infonce (the "w/o soft target" ablation)
    "tau": 3.0,                # τ's initial value; τ is learned
    "cmsa_dim": 768,           # block-average width (loss.block_sizes)
    "steps": 4000,             # 2000 for Sports in the paper
    "batch_items": 32,         # items per step, each giving an image and a text sequence
    "lr": 2e-4,
    "clip": 1.0,
    "seed": 0,
    # Processes the adapter trains with (torchrun's world size). Each takes batch_items /
    # adapt_processes of a step's items and CMSA contrasts within them, so it shapes the adapter
    # and is part of its key; training refuses to run under another world size.
    "adapt_processes": 1,
    "gradient_checkpointing": True,
    "checkpoint_every": 200,
}
# What each accepts beyond its default's type (protocol.config); cmsa_dim's upper bound (the model's
# hidden size) and batch_items' (the data set's items) are checked before training (check_settings).
RULES = {"adapter": ADAPTERS, "experts": SIZE, "rank": SIZE, "alpha": POSITIVE, "dropout": DROPOUT,
         "gate_dim": SIZE, "loss": tuple(LOSSES), "tau": POSITIVE, "cmsa_dim": SIZE, "steps": SIZE,
         "batch_items": at_least(2),  # CMSA contrasts the items of a step: one has nothing to contrast
         "lr": POSITIVE, "clip": POSITIVE, "seed": NON_NEGATIVE, "adapt_processes": SIZE,
         "checkpoint_every": SIZE}
RELATIONS = (
    # MoDA splits the rank between its experts (LoRA has one)
    (("adapter", "experts", "rank"), lambda adapter, experts, rank: None if adapter != "moda" or rank % experts == 0
     else "experts must divide rank under MoDA (each expert has rank / experts), e.g. rank=8 experts=1, 2, 4 or 8"),
    # every process takes an equal share of a step's items, at least 2 to contrast
    (("batch_items", "adapt_processes"), lambda batch, world: None if batch % world == 0 and batch // world >= 2
     else "batch_items must split into adapt_processes shares of at least 2 items: choose a multiple of it"),
)
# Settings that change speed or resumption, not the trained adapter.
RUN_SETTINGS = ("gradient_checkpointing", "checkpoint_every")


def step_items(n_items: int, batch_items: int, seed: int, step: int) -> np.ndarray:
    """The items of global step `step`: consecutive slices of a per-epoch seeded permutation."""
    per_epoch = n_items // batch_items
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_items)
    return order[k * batch_items:(k + 1) * batch_items]


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


class Aligner(torch.nn.Module):
    """The adapted backbone and the alignment loss (holding τ) as one module, for DDP."""

    def __init__(self, model, loss: AlignmentLoss):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, inputs) -> torch.Tensor:
        states = qwenvl.pooled_hidden(self.model, inputs)
        n = len(states) // 2  # image prompts first, then the same items' text prompts
        return self.loss(states[:n], states[n:])


def item_inputs(processor, dataset, chats: dict, items: np.ndarray, device, dtype):
    """One batch: the items' image prompts (with their images) then their text prompts."""
    images, _ = load_images(dataset, items)
    texts = [chats["image"]] * len(items) + [chats["text"][i] for i in items]
    return qwenvl.batch_inputs(processor, texts, images, device, dtype)


def torchrun_ranks() -> Ranks:
    return Ranks(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def start_process_group(ranks: Ranks, device: torch.device) -> None:
    """The process group torchrun asks for: NCCL between GPUs, gloo between CPU processes."""
    import torch.distributed as dist

    if ranks.world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL's collectives run on the current device
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def model_config(settings: dict):
    """The configured base model's config (weights resolved, not loaded)."""
    from transformers import AutoConfig

    from extractors.weights import resolve_weights

    return AutoConfig.from_pretrained(resolve_weights(settings["model"], settings["revision"], "sda"))


def check_processes(settings: dict, world: int) -> None:
    """Training runs in exactly the `adapt_processes` its key records."""
    if world != settings["adapt_processes"]:
        raise HarnessError(f"this adapter is set to train in adapt_processes={settings['adapt_processes']} "
                           f"process(es) but {world} run; CMSA contrasts within each process, so the count "
                           f"makes another adapter: pass adapt_processes={world} or run "
                           f"{settings['adapt_processes']} process(es).")


def check_settings(settings: dict, n_items: int, world: int, hidden: int) -> None:
    """Refuse settings that cannot train with this model, data set and process count, before any
    weights are loaded (each setting's own range, RULES and RELATIONS, was checked when the
    extractor was configured)."""
    if settings["cmsa_dim"] > hidden:
        raise HarnessError(f"cmsa_dim={settings['cmsa_dim']} cannot block-average the model's {hidden} "
                           f"hidden dims; choose 1 <= cmsa_dim <= {hidden} (768 for Qwen2.5-VL-7B).")
    batch = settings["batch_items"]
    if batch > n_items:
        raise HarnessError(f"batch_items={batch} must lie between 2 and the data set's {n_items} items; "
                           "fix batch_items=.")
    check_processes(settings, world)  # then batch_items splits into the world (RELATIONS)


def train_adapter(dataset, settings: dict, out_dir: Path, progress: bool = True, meta: dict | None = None) -> Path:
    """Train the adapter `settings` describe and save it in `out_dir` (resuming its checkpoint).

    `out_dir` gets peft's adapter files and sda.json (τ, the loss history, `meta`).
    """
    from tqdm.auto import tqdm

    from extractors.sda.params import count_parameters
    from extractors.weights import resolve_weights

    s, ranks = settings, torchrun_ranks()
    check_settings(s, dataset.n_items, ranks.world, model_config(s).text_config.hidden_size)
    device = qwenvl.resolve_device(s["device"], ranks)
    start_process_group(ranks, device)
    dtype = qwenvl.resolve_dtype(s["dtype"], device)

    folder = resolve_weights(s["model"], s["revision"], "sda")
    processor = qwenvl.load_processor(folder, s["min_pixels"], s["max_pixels"])
    torch.manual_seed(s["seed"])  # the adapter's initial weights
    model = add_adapter(qwenvl.load_model(folder, device, dtype), s)
    if s["gradient_checkpointing"]:
        # Non-reentrant: recomputation in backward re-runs the decoder layers' forward as is, with
        # the modality ids the MoDA layers still hold from this step's forward.
        model.get_base_model().gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
        model.get_base_model().config.get_text_config().use_cache = False  # no KV cache while training
    aligner = Aligner(model, AlignmentLoss(s["loss"], s["cmsa_dim"], s["tau"]).to(device)).train()
    params = [p for p in aligner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s["lr"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / s["steps"])

    checkpoint = Path(out_dir).with_name(Path(out_dir).name + ".checkpoint.pt")
    start, history, earlier = 0, [], {"seconds": 0.0, "resumes": 0}
    if checkpoint.exists():
        start, history, earlier = load_checkpoint(checkpoint, model, aligner.loss, optimizer, schedule)
        earlier["resumes"] += 1
    trained = aligner
    if ranks.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # The base model's buffers (rotary tables) are constants: nothing to broadcast each step.
        trained = DistributedDataParallel(aligner, device_ids=[device] if device.type == "cuda" else None,
                                          broadcast_buffers=False)

    text_chats, image_chat = qwenvl.item_chats(processor, dataset, s)
    chats = {"text": text_chats, "image": image_chat}
    began = time.perf_counter()
    bar = tqdm(range(start, s["steps"]), initial=start, total=s["steps"], desc=f"adapt {s['adapter']}",
               unit="step", disable=not (progress and ranks.is_main), file=sys.stderr, dynamic_ncols=True)
    for step in bar:
        items = step_items(dataset.n_items, s["batch_items"], s["seed"], step)[ranks.rank::ranks.world]
        torch.manual_seed(step_seed(s["seed"], step, ranks.rank))  # this step's dropout masks
        loss = trained(item_inputs(processor, dataset, chats, items, device, dtype))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s["clip"])
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        history.append({"step": step + 1, "loss": loss.item(), "tau": aligner.loss.tau.item()})
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", tau=f"{history[-1]['tau']:.3f}")
        done = step + 1
        if ranks.is_main and done < s["steps"] and done % s["checkpoint_every"] == 0:
            # The seconds so far, over every process this run has had (a resumed run counts them all).
            spent = {"seconds": earlier["seconds"] + time.perf_counter() - began, "resumes": earlier["resumes"]}
            save_checkpoint(checkpoint, model, aligner.loss, optimizer, schedule, done, history, spent)
    bar.close()

    if ranks.is_main:
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp)
            write_json(tmp / "sda.json", (meta or {}) | {
                "settings": s, "dataset": dataset.name, "dataset_hash": dataset.content_hash,
                "tau": aligner.loss.tau.item(), "steps": s["steps"], "history": history,
                "parameters": count_parameters(model), "processes": ranks.world,
                "device": str(device), "dtype": str(dtype).replace("torch.", ""),
                "seconds": round(earlier["seconds"] + time.perf_counter() - began, 3),
                "resumes": earlier["resumes"], "resumed_at": start,
                "peak_memory_mb": (round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
                                   if device.type == "cuda" else None)})
        checkpoint.unlink(missing_ok=True)
    barrier(ranks)
    return Path(out_dir)


def save_checkpoint(path: Path, model, loss, optimizer, schedule, step: int, history: list,
                    spent: dict) -> None:
    """`spent`: seconds and resumes of the run so far, carried into the resumed run's sda.json."""
    from peft import get_peft_model_state_dict

    state = {"adapter": get_peft_model_state_dict(model), "tau": loss.tau.detach().clone(),
             "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "step": step, "history": history, "spent": spent}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, model, loss, optimizer, schedule) -> tuple[int, list, dict]:
    from peft import set_peft_model_state_dict

    state = torch.load(path, map_location=loss.tau.device, weights_only=True)
    set_peft_model_state_dict(model, state["adapter"])
    with torch.no_grad():
        loss.tau.copy_(state["tau"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    return state["step"], state["history"], dict(state.get("spent", {"seconds": 0.0, "resumes": 0}))
