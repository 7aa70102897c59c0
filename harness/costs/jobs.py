"""The jobs of a build in order (prepare, images, adapt, extract, teachers, grid points), each with
what is missing and the one-line fix, its FLOPs and peak GPU memory (docs/plan.md).

The rows of a table come from harness.tables.plan (Plan.jobs); a single run or grid is one such
Job. Inputs shared by several rows (a data set, a feature set, an adapter, a RAT teacher) are
one job, listed before the first row that needs it, as the build runs them.
"""
from __future__ import annotations

import functools
import importlib.util
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.costs import data as costdata
from harness.costs import flops, memory
from harness.costs.architectures import ARCHITECTURES, build, clip_shapes, encoder_shape, lora_params, qwen_shape
from protocol.fileio import read_json

QWEN_EXTRACTORS = ("qwenvl", "sda", "sda-lora", "sda-infonce")
# Settings that make another adapter (extractors/sda/store.py keys more; these change its cost).
ADAPTER_SETTINGS = ("model", "revision", "adapter", "experts", "rank", "loss", "steps", "batch_items",
                    "adapt_processes", "min_pixels", "max_pixels", "lr", "seed", "tau", "cmsa_dim", "gate_dim")
PADDING_BATCHES = 200  # random training batches drawn to estimate a step's padded length


@dataclass
class PlanJob:
    kind: str  # prepare | images | adapt | extract | teacher | grid
    dataset: str
    what: str
    missing: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    flops: float = 0.0
    peak_bytes: float = 0.0
    workload: str = ""  # a key of gpus.ASSUMED_MFU; "" for CPU/network work (not costed)
    processes: int = 0  # GPUs one piece needs; 0: split over every GPU (shards, grid points)
    pieces: int = 0  # how many parts it splits into at most (0: any)
    after: list[int] = field(default_factory=list)
    note: str = ""
    tokens_from: str = ""  # where its token counts come from (harness/costs/data.py)


def _weights_fix(model: str, revision: str, extractor: str, profile: str) -> tuple[str | None, str]:
    """(missing line or None, fix) for an extractor's weights, without touching the network."""
    from extractors.weights import PACKAGED, TINY_PREFIX

    if model.startswith(TINY_PREFIX):
        return None, ""
    where = f"model: under profiles.{profile} in the configs/extractors/*.yaml naming it"
    path = Path(model).expanduser()
    if path.is_dir() or model.startswith((".", "/", "~")):
        if (path / "config.json").exists():
            return None, ""
        return f"weights folder {path} (no config.json)", f"copy the model folder of {model} there, or set {where}"
    if model in PACKAGED and importlib.util.find_spec(PACKAGED[model][0]) is not None:
        return None, ""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    if isinstance(try_to_load_from_cache(model, "config.json", revision=revision or None), str):
        return None, ""
    rev = f" --revision {revision}" if revision else ""
    return (f"weights {model} (not in {HF_HUB_CACHE})",
            f"`huggingface-cli download {model}{rev}` on a connected machine, or set {where} to a local folder")


def _shape_model(model: str, fallback: str | None = None):
    """The architecture to cost `model` with: the repository's config of a hub id, or a local
    folder's config.json (tiny models once built); else that of `fallback` (the extractor's
    default model: a folder not yet filled is costed as the model it is meant to hold)."""
    from extractors.weights import TINY_PREFIX

    if model in ARCHITECTURES:
        return build(ARCHITECTURES[model])
    folder = Path(model).expanduser()
    if model.startswith(TINY_PREFIX):
        from protocol.config import artifacts_dir

        folder = artifacts_dir() / "models" / model[len(TINY_PREFIX):]
        if not (folder / "config.json").exists():
            return None  # built on first use; a few seconds of CPU, not worth costing
    if not (folder / "config.json").exists():
        return build(ARCHITECTURES[fallback]) if fallback in ARCHITECTURES else None
    return _meta_from_folder(str(folder))


@functools.lru_cache(maxsize=None)
def _meta_from_folder(folder: str):
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        return getattr(transformers, config.architectures[0])._from_config(config)


def resolved_extractor(name: str, profile: str, overrides: dict, dataset: str | None = None) -> dict:
    """An extractor's whole settings (class defaults < YAML < profile < the data set's block <
    overrides), checked by the extractor class as `extract` checks them (a bad override fails here)."""
    from extractors.registry import EXTRACTORS
    from extractors.store import extractor_settings

    return EXTRACTORS.get(name)(**extractor_settings(name, profile, overrides, dataset)).settings()


class Builder:
    """Collects the jobs of a list of table Jobs for one profile."""

    def __init__(self, profile: str, costs: bool = True):
        """`costs` False: only the jobs and what they lack (no architectures, no FLOPs)."""
        self.profile, self.costs, self.jobs, self._index, self._stats = profile, costs, [], {}, {}

    def arch(self, model: str, fallback: str | None):
        return _shape_model(model, fallback) if self.costs else None

    def stats(self, dataset: str) -> costdata.DataStats:
        if dataset not in self._stats:
            self._stats[dataset] = costdata.data_stats(dataset, self.profile)
        return self._stats[dataset]

    def add(self, key, make) -> int:
        if key not in self._index:
            job = make()
            self._index[key] = len(self.jobs)
            self.jobs.append(job)
        return self._index[key]

    # -- inputs ---------------------------------------------------------------------------
    def prepare(self, dataset: str) -> int:
        def make():
            from protocol.data.amazon import DOWNLOAD_HINT
            from protocol.data.prepare import dataset_dir, source_files
            from protocol.data.spec import dataset_spec

            if costdata.prepared_folder(dataset):
                return PlanJob("prepare", dataset, f"prepared {dataset}", note="prepared")
            spec = dataset_spec(dataset, self.profile)
            job = PlanJob("prepare", dataset, f"prepare {dataset} ({spec.source}, recipe {spec.recipe})")
            if (dataset_dir(spec) / "meta.json").exists():
                job.note = "prepared"
                return job
            for path in source_files(spec):
                if not path.is_file():
                    job.missing.append(f"raw file {path.name}")
                    job.fixes.append(f"put {path.name} at {path} ({DOWNLOAD_HINT})")
            job.note = "CPU, minutes"
            return job
        return self.add(("prepare", dataset), make)

    def images(self, dataset: str, prepared: int) -> int | None:
        from protocol.data.spec import dataset_spec

        folder = costdata.prepared_folder(dataset)
        images = (read_json(folder / "meta.json")["recipe"].get("images") if folder
                  else dataset_spec(dataset, self.profile).images)
        if images == "render":
            return None  # rendered by prepare (the mini profile)

        def make():
            stats = self.stats(dataset)
            job = PlanJob("images", dataset, f"images {dataset} (data images)", after=[prepared],
                          note="network, not costed")
            fix = f"`python -m harness data images --dataset {dataset} --profile {self.profile}` (after prepare)"
            if stats.prepared is None:
                job.missing.append(f"item images of {dataset} (none fetched: missing ones become noise images)")
            else:
                from protocol.data.images import local_images

                from protocol.data.images import REPORT_JSON

                have = len(local_images(stats.prepared))
                if have == stats.items:
                    return job
                if (Path(stats.prepared) / REPORT_JSON).exists():  # fetched: the rest failed (404s, ...)
                    job.note = (f"{have:,} of {stats.items:,} item images fetched, the others are noise images; "
                                "`data images` again retries them")
                    return job
                job.missing.append(f"item images of {dataset} ({have:,} of {stats.items:,} fetched, "
                                   "the others become noise images)")
            job.fixes.append(fix)
            return job
        return self.add(("images", dataset), make)

    def extract(self, dataset: str, extractor: str, settings: dict, after: list[int]) -> int:
        key = ("extract", dataset, extractor, json.dumps(settings, sort_keys=True, default=str))
        if extractor in QWEN_EXTRACTORS[1:]:
            after = after + [self.adapt(dataset, extractor, settings, after)]
        return self.add(key, lambda: self._extract_job(dataset, extractor, settings, after))

    def _extract_job(self, dataset: str, extractor: str, settings: dict, after: list[int]) -> PlanJob:
        stats = self.stats(dataset)
        label = extractor + "".join(f" {k}={v}" for k, v in sorted(settings.items())
                                    if k == "experts" and extractor.startswith("sda"))
        job = PlanJob("extract", dataset, f"extract {label} {dataset}", after=list(after))
        if extractor == "base":
            model = settings.get("text_model", "sentence-transformers/all-MiniLM-L6-v2")
            self._need_weights(job, model, "", extractor)
            self._need_cnn_file(job, dataset)
            arch = self.arch(model, "sentence-transformers/all-MiniLM-L6-v2")
            if arch is not None:
                lengths = costdata.plain_text_lengths(stats, costdata.MINILM_MAX_TOKENS)
                job.flops = stats.items * flops.encoder_forward(encoder_shape(arch), lengths) / len(lengths)
                job.peak_bytes = memory.weights(sum(p.numel() for p in arch.parameters()))
            job.workload = "minilm"
            return job
        if extractor != "clip" and extractor not in QWEN_EXTRACTORS:  # a plugin: its inputs are its own
            job.note = "plugin extractor: not costed"
            return job
        self._need_weights(job, settings["model"], settings.get("revision", ""), extractor)
        arch = self.arch(settings["model"], self._default_model(extractor))
        if extractor == "clip":
            job.workload = "clip"
            if arch is not None:
                shapes, vc = clip_shapes(arch), arch.config.vision_config
                image_tokens = (vc.image_size // vc.patch_size) ** 2 + 1  # patches + the class token
                text = costdata.plain_text_lengths(stats, costdata.CLIP_MAX_TOKENS)
                job.flops = stats.items * (flops.encoder_forward(shapes["image"], [image_tokens])
                                           + flops.encoder_forward(shapes["text"], text) / len(text))
                job.peak_bytes = memory.weights(sum(p.numel() for p in arch.parameters()))
            return job
        job.workload = "extract"
        if arch is not None:
            shape = qwen_shape(arch)
            text, image, patches = self._qwen_lengths(stats, settings)
            per_item = (flops.qwen_forward(shape, text) / len(text)
                        + flops.qwen_forward(shape, image, patches) / len(image))
            adapter = lora_params(shape, settings["rank"]) if extractor.startswith("sda") else 0
            job.flops = stats.items * per_item + 2.0 * adapter * stats.items * (text.mean() + image.mean())
            job.note = f"{text.mean():.0f} text + {image.mean():.0f} image-prompt tokens an item"
            job.tokens_from = f"text: {stats.text_source}; images: {stats.image_source}"
            longest = max(np.percentile(text, 99), image.max())
            job.peak_bytes = memory.weights(shape.backbone) + memory.inference_activations(
                shape, settings["batch_size"] * longest)
        return job

    def _qwen_lengths(self, stats, settings):
        patches = costdata.image_grid(stats, settings["min_pixels"], settings["max_pixels"])
        text = costdata.qwen_text_lengths(stats, settings["domain"] or stats.name, settings["text_prefix"])
        image = costdata.qwen_image_lengths(stats, settings["domain"] or stats.name, settings["image_prompt"], patches)
        return text, image, patches

    def adapt(self, dataset: str, extractor: str, settings: dict, after: list[int]) -> int:
        shaping = {k: settings.get(k) for k in ADAPTER_SETTINGS}
        key = ("adapt", dataset, json.dumps(shaping, sort_keys=True, default=str))

        def make():
            stats = self.stats(dataset)
            s = settings
            kind = "moda" if s["adapter"] == "moda" else "lora"
            job = PlanJob("adapt", dataset, f"adapt {kind} {s['loss']} experts={s['experts']} steps={s['steps']} "
                          f"{dataset}", after=list(after), workload="adapt", processes=s["adapt_processes"])
            self._need_weights(job, s["model"], s.get("revision", ""), extractor)
            arch = self.arch(s["model"], self._default_model(extractor))
            if arch is None:
                return job
            shape = qwen_shape(arch)
            text, image, patches = self._qwen_lengths(stats, s)
            per_process = max(s["batch_items"] // s["adapt_processes"], 1)
            # a step pads its image and text prompts together to the longest (extractors/sda/train.py)
            rng = np.random.default_rng(0)
            longest = np.mean([max(rng.choice(text, per_process).max(), image.max())
                               for _ in range(PADDING_BATCHES)])
            lengths, step_patches = [longest] * (2 * per_process), [patches.mean()] * per_process
            adapter = lora_params(shape, s["rank"])
            step = flops.adapt_step(shape, lengths, step_patches, adapter)
            job.flops = s["steps"] * s["adapt_processes"] * step
            gate = 2 * s["gate_dim"] + s["gate_dim"] * s["experts"] if kind == "moda" else 0
            trained = adapter + 7 * shape.lm_layers * gate  # 7 adapted Linears a layer
            job.peak_bytes = (memory.weights(shape.backbone) + memory.adapter_state(trained)
                              + memory.adapt_activations(shape, longest * 2 * per_process, patches.mean() * per_process))
            job.note = f"{2 * per_process} sequences x {longest:.0f} tokens a step and process"
            job.tokens_from = f"text: {stats.text_source}; images: {stats.image_source}"
            return job
        return self.add(key, make)

    def teacher(self, dataset: str, params: dict, after: list[int]) -> int:
        from recommenders.rat import TEACHER_SETTINGS

        settings = {k: params[k] for k in TEACHER_SETTINGS} | {"epochs": params["teacher_epochs"]}

        def make():
            from harness.costs.recommenders import epoch_flops

            job = PlanJob("teacher", dataset, f"RAT teacher (ID-SASRec, {settings['epochs']} epochs) {dataset}",
                          after=list(after), workload="recommender", pieces=1)
            if self.costs:
                job.flops = settings["epochs"] * epoch_flops("sasrec", params, self.stats(dataset), None)
            return job
        return self.add(("teacher", dataset, json.dumps(settings, sort_keys=True)), make)

    @staticmethod
    def _default_model(extractor: str) -> str:
        from extractors.registry import EXTRACTORS

        return EXTRACTORS.get(extractor).defaults.get("model", "")

    def _need_weights(self, job: PlanJob, model: str, revision: str, extractor: str) -> None:
        missing, fix = _weights_fix(model, revision, extractor, self.profile)
        if missing:
            job.missing.append(missing)
            job.fixes.append(fix)

    def _need_cnn_file(self, job: PlanJob, dataset: str) -> None:
        from protocol.data.amazon import DOWNLOAD_HINT
        from protocol.data.spec import dataset_spec

        if costdata.prepared_folder(dataset):
            return  # no config names a .b file for it
        spec = dataset_spec(dataset, self.profile)
        if spec.image_features and not spec.resolve(spec.image_features).is_file():
            path = spec.resolve(spec.image_features)
            job.missing.append(f"CNN image features {path.name}")
            job.fixes.append(f"put {path.name} at {path} ({DOWNLOAD_HINT})")

    # -- the rows ---------------------------------------------------------------------------
    def row(self, table_job) -> int:
        """One table row on one data set (a grid), after the inputs it needs."""
        from harness.costs.recommenders import epoch_flops, feature_dim
        from harness.grid import grid_axes
        from harness.runner import RunSpec, table_extraction_settings
        from recommenders import MODELS

        overrides = dict(table_job.overrides)
        d, model, extractor = table_job.dataset, table_job.model, table_job.extractor
        after = [self.prepare(d)]
        wants = MODELS.get(model).wants_features(extractor)
        settings = {}
        if wants:
            settings = resolved_extractor(extractor, self.profile, table_extraction_settings(overrides), d)
            if extractor != "base":
                images = self.images(d, after[0])
                after += [] if images is None else [images]
            after.append(self.extract(d, extractor, settings, list(after)))
        axes, fixed = grid_axes(model, extractor, overrides, self.profile)
        points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        spec = RunSpec.resolve(model, d, extractor, self.profile, {**fixed, **points[0]})
        if wants and "teacher_epochs" in spec.params and spec.params.get("alpha", 0):
            after.append(self.teacher(d, spec.params, [after[0]]))
        label = f"grid {table_job.label}" + (f" {len(points)} points" if len(points) > 1 else "")
        job = PlanJob("grid", d, label, after=after, workload="recommender", pieces=len(points))
        if not self.costs:
            self.jobs.append(job)
            return len(self.jobs) - 1
        per_epoch = epoch_flops(model, spec.params, self.stats(d), feature_dim(extractor, settings) if wants else None)
        if per_epoch is None:
            job.note = "no cost formula for this model"
        else:
            job.flops = len(points) * spec.train["max_epochs"] * per_epoch
            job.note = f"{len(points)} x up to {spec.train['max_epochs']} epochs"
        self.jobs.append(job)
        return len(self.jobs) - 1


def build_jobs(table_jobs, profile: str, costs: bool = True) -> list[PlanJob]:
    builder = Builder(profile, costs)
    for table_job in table_jobs:
        builder.row(table_job)
    return builder.jobs
