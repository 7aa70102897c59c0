"""The cost model behind `python -m harness plan` and the command itself.

Expected values come from outside the code under test: the models' published parameter totals,
the authors' low-rank weight count, torch's FlopCounterMode on a real (tiny) Qwen2.5-VL forward
and SDA step, the dataset and table YAMLs read here.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from harness.cli import main as cli
from harness.costs import flops
from harness.costs.architectures import build, lora_params, n_params, qwen_shape
from tests.conftest import REPO

# Published totals (the models' hub pages / safetensors metadata).
QWEN_7B_TOTAL = 8_292_166_656
CLIP_L14_TOTAL = 427_616_513
MINILM_L6_TOTAL = 22_713_216
QWEN_7B_LOW_RANK = 20_185_088  # the authors' count of r = 8 weights on the 7 Linears x 28 layers


def test_parameter_counts_of_the_real_architectures_match_the_published_totals():
    qwen = build("qwen2.5-vl-7b-instruct")
    assert all(p.device.type == "meta" for p in qwen.parameters())  # nothing allocated, nothing downloaded
    assert abs(n_params(qwen) - 8.29e9) / 8.29e9 < 0.001
    assert n_params(qwen) == QWEN_7B_TOTAL
    assert n_params(build("clip-vit-large-patch14")) == CLIP_L14_TOTAL
    assert abs(n_params(build("clip-vit-large-patch14")) - 428e6) / 428e6 < 0.001
    assert n_params(build("all-minilm-l6-v2")) == MINILM_L6_TOTAL
    shape = qwen_shape(qwen)
    assert lora_params(shape, 8) == QWEN_7B_LOW_RANK
    # the extractor loads the backbone without the LM head (vocab x hidden = 152064 x 3584)
    assert shape.backbone == QWEN_7B_TOTAL - 152_064 * 3_584


@pytest.fixture(scope="module")
def tiny_batch(tmp_path_factory):
    """The tiny Qwen2.5-VL (extractors/tiny.py) with eager attention, so FlopCounterMode sees the
    attention matmuls too, and one batch of two image prompts and two text prompts."""
    from PIL import Image
    from transformers import Qwen2_5_VLModel

    from extractors import prompts, qwenvl
    from extractors.tiny import build_tiny_qwen2_5_vl

    folder = str(build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny") / "qwen"))
    processor = qwenvl.load_processor(folder, 400, 65536)
    model = Qwen2_5_VLModel.from_pretrained(folder, attn_implementation="eager").eval()
    image = Image.fromarray((np.random.default_rng(0).random((224, 168, 3)) * 255).astype("uint8"))
    image_chat = qwenvl.chat_text(processor, prompts.image_messages(prompts.image_prompt("toys")))
    # a long text prompt (fields at the 100-character cut), so attention is a large share of the
    # language model's FLOPs and a wrong attention term shows
    meta = {"asin": "B000TEST", "title": "Wooden building blocks, 100 pieces, for kids", "brand": "Acme",
            **{f"field{i}": "classic wooden toy set with colour blocks for learning and play " * 2 for i in range(6)}}
    text_chat = qwenvl.chat_text(processor, prompts.text_messages(prompts.text_prompt(meta, "toys")))
    inputs = qwenvl.batch_inputs(processor, [image_chat, image_chat, text_chat, text_chat], [image, image],
                                 torch.device("cpu"), torch.float32)
    lengths = [inputs["input_ids"].shape[1]] * 4
    patches = [int(g.prod()) for g in inputs["image_grid_thw"]]
    return model, inputs, lengths, patches


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_extraction_forward_flops_agree_with_flop_counter(tiny_batch):
    model, inputs, lengths, patches = tiny_batch
    assert patches == [192, 192]  # 224 x 168 px -> 16 x 12 patches: the image grid is really there
    with torch.no_grad():
        measured = counted(lambda: model(**inputs))
    estimate = flops.qwen_forward(qwen_shape(model), lengths, patches)
    assert abs(estimate - measured) / measured < 0.10, (estimate, measured)


def test_adapt_step_flops_agree_with_flop_counter(tiny_batch):
    from extractors.sda.loss import AlignmentLoss
    from extractors.sda.model import add_adapter
    from extractors.sda.train import DEFAULTS, Aligner

    base, inputs, lengths, patches = tiny_batch
    shape = qwen_shape(base)  # before peft wraps it
    settings = dict(DEFAULTS, cmsa_dim=16)
    adapted = add_adapter(base, settings)
    # as extractors/sda/train.py does
    adapted.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    aligner = Aligner(adapted, AlignmentLoss("cmsa", 16, 3.0)).train()
    measured = counted(lambda: aligner(inputs).backward())
    estimate = flops.adapt_step(shape, lengths, patches, lora_params(shape, settings["rank"]))
    assert abs(estimate - measured) / measured < 0.10, (estimate, measured)
    # and clearly more than a forward: checkpointing recomputes, backward costs twice a forward
    assert measured > 2.5 * flops.qwen_forward(shape, lengths, patches)


@pytest.fixture
def no_raw_files(tmp_path, monkeypatch):
    """The repository's configs with the paper profile's raw files pointed into an empty folder
    (whatever raw/ holds on this machine), and an empty Hugging Face cache."""
    import shutil

    import huggingface_hub.constants

    import protocol.config

    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    for path in (configs / "datasets").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())
        paper = (spec.get("profiles") or {}).get("paper") or {}
        for key in ("reviews", "ratings", "meta", "image_features"):
            if paper.get(key):
                paper[key] = str(tmp_path / "raw" / paper[key])
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
    monkeypatch.setattr(protocol.config, "CONFIG_DIR", configs)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    return configs


def _paper_source(configs, dataset: str, key: str):
    spec = yaml.safe_load((configs / "datasets" / f"{dataset}.yaml").read_text())
    return REPO / spec["profiles"]["paper"][key]  # an absolute path stays itself


def test_plan_of_a_run_names_missing_raw_file_and_weights_with_their_fixes(no_raw_files, capsys):
    reviews = _paper_source(no_raw_files, "toys", "reviews")
    datasets = Path(os.environ["HARNESS_ARTIFACTS"]) / "datasets"
    before = sorted(datasets.glob("toys-*"))  # the mini profile's, if an earlier test prepared it
    code = cli(["plan", "run", "--model", "vbpr", "--extractor", "qwenvl", "--dataset", "toys",
                "--profile", "paper", "extractor.model=/no/such/qwen-folder"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"put {reviews.name} at {reviews}" in out  # the raw file, where it goes
    assert "weights folder /no/such/qwen-folder (no config.json)" in out
    assert "copy the model folder of /no/such/qwen-folder there" in out
    assert sorted(datasets.glob("toys-*")) == before  # nothing was prepared
    # a hub id absent from the cache: the download command
    code = cli(["plan", "run", "--model", "sasrec", "--extractor", "clip", "--dataset", "toys", "--profile", "paper"])
    out = capsys.readouterr().out
    assert "`huggingface-cli download openai/clip-vit-large-patch14`" in out
    assert "RAT teacher" in out  # SASRec with features needs its ID-SASRec teacher


def test_plan_of_table1_paper_lists_every_job_once_and_writes_its_csv(no_raw_files, capsys):
    table = yaml.safe_load((REPO / "configs" / "tables" / "table1.yaml").read_text())
    n_data, n_models, n_extractors = len(table["datasets"]), len(table["models"]), len(table["extractors"])
    assert cli(["plan", "table1", "--profile", "paper", "--gpus", "8", "--gpu", "h100"]) == 0
    out = capsys.readouterr().out
    path = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("written: "))
    jobs = pd.read_csv(path)
    counts = jobs["kind"].value_counts()
    assert counts["grid"] == n_data * n_models * n_extractors  # every cell's grid
    assert counts["prepare"] == n_data and counts["extract"] == n_data * n_extractors
    assert counts["adapt"] == n_data  # one SDA adapter a data set, shared by its four rows
    adapt = jobs[jobs["kind"] == "adapt"]
    assert (adapt["peak_gb"] > 15.5).all() and (adapt["peak_gb"] < 80).all()  # > bf16 weights, fits an H100
    assert jobs["gpu_hours"].sum() > 0 and (jobs["end_h"].max() * 8 >= jobs["gpu_hours"].sum() - 1e-9)
    # each missing raw file is named once in the summary, with where it goes
    reviews = _paper_source(no_raw_files, "beauty", "reviews")
    assert out.count(f"put {reviews.name} at {reviews}") == 1
    assert "GPU-hours" in out
    # the same check without costs, for a build to run before any work
    from harness.costs.report import missing_inputs
    from harness.tables.plan import load_plan

    missing = missing_inputs(load_plan("table1").jobs(), "paper")
    assert missing[f"raw file {reviews.name}"].startswith(f"put {reviews.name} at {reviews}")
    assert sum(what.startswith("raw file ") for what in missing) == 2 * n_data  # reviews + meta each
    images = {what: fix for what, fix in missing.items() if what.startswith("item images of ")}
    assert len(images) == n_data
    assert all(f"python -m harness data images --dataset {d} --profile paper" in images[next(
        w for w in images if w.startswith(f"item images of {d} "))] for d in table["datasets"])


def test_plan_reads_the_gpu_checks_utilisation(tmp_path, monkeypatch):
    from harness.costs.gpus import ASSUMED_MFU, utilisation

    csv = tmp_path / "gpu_check.csv"
    assert utilisation("adapt", csv) == (ASSUMED_MFU["adapt"], "assumed")
    pd.DataFrame([{"what": "adapt_step", "mfu": 0.31, "tiny": False, "device": "NVIDIA H100 80GB HBM3"},
                  {"what": "extract_qwen", "mfu": 0.9, "tiny": True, "device": "cpu"}]).to_csv(csv, index=False)
    assert utilisation("adapt", csv) == (0.31, "measured (NVIDIA H100 80GB HBM3)")
    assert utilisation("extract", csv)[1] == "assumed"  # a tiny CPU run is no measurement


def test_schedule_runs_independent_jobs_side_by_side_and_waits_for_inputs():
    from harness.costs.jobs import PlanJob
    from harness.costs.schedule import schedule

    hour = 989e12 * 0.40 * 3600  # one hour of an H100 at the assumed 40%
    jobs = [PlanJob("adapt", "a", "adapter a", flops=hour, workload="adapt", processes=1),
            PlanJob("extract", "a", "extract a", flops=2 * hour, workload="extract", after=[0]),
            PlanJob("adapt", "b", "adapter b", flops=hour, workload="adapt", processes=1)]
    two = schedule(jobs, 2, "h100").set_index("job")
    assert two.loc["adapter b", "start_h"] == pytest.approx(0.0)  # beside adapter a, not after it
    assert two.loc["extract a", "start_h"] == pytest.approx(1.0)  # after its adapter
    assert two["end_h"].max() == pytest.approx(2.0)  # 4 GPU-hours on 2 GPUs, no idle GPU
    assert two["gpu_hours"].sum() == pytest.approx(4.0)
    one = schedule(jobs, 1, "h100")
    assert one["end_h"].max() == pytest.approx(4.0)
    wide = schedule([PlanJob("adapt", "a", "8-GPU adapter", flops=hour, workload="adapt", processes=8)], 2, "h100")
    assert "8 GPUs (adapt_processes=8)" in wide.loc[0, "missing"]
