"""adapt on mini Toys with the tiny Qwen2.5-VL: learning, expert split, resume, torchrun, CLI, analysis."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from extractors import qwenvl
from extractors.sda import train
from extractors.sda.layer import expert_weights, moda_layers
from extractors.sda.model import IMAGE, TEXT, add_adapter, load_adapter
from extractors.sda.store import adapter_dir, adapter_meta, adapter_settings, ensure_adapter
from harness.cli import main as cli
from protocol.errors import HarnessError

# A few cheap steps for the mechanics; the learning test uses the mini profile's own recipe.
SHORT = {"steps": 4, "batch_items": 4, "checkpoint_every": 2}


def mini_settings(toys, **overrides):
    from extractors.store import make_extractor

    return make_extractor("sda", toys, "mini", overrides).settings()


@pytest.fixture(scope="module")
def trained(toys):
    """The mini profile's adapter: 30 steps of 8 items, lr 5e-3 (configs/extractors/sda.yaml)."""
    settings = mini_settings(toys)
    return settings, ensure_adapter(toys, settings, progress=False)


def test_loss_decreases_on_mini_data(trained):
    history = adapter_meta(trained[1])["history"]
    losses = [h["loss"] for h in history]
    assert len(losses) == trained[0]["steps"]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.1, losses
    assert history[-1]["tau"] != trained[0]["tau"]  # τ is learned and saved with the adapter


def test_the_modalities_get_different_expert_weights_after_training(trained):
    settings, path = trained
    folder = qwenvl.resolve_weights(settings["model"])
    model = load_adapter(qwenvl.load_model(folder, torch.device("cpu"), torch.float32), path)
    torch.manual_seed(settings["seed"])
    initial = add_adapter(qwenvl.load_model(folder, torch.device("cpu"), torch.float32), settings)
    both = torch.tensor([IMAGE, TEXT])
    for layer, start in zip(moda_layers(model), moda_layers(initial)):
        with torch.no_grad():
            image, text = expert_weights(layer, "default", both)
            image0, text0 = expert_weights(start, "default", both)
        assert (image - text).abs().max() > 1e-3
        assert not torch.allclose(image - text, image0 - text0)  # training moved the split


def test_a_killed_training_resumes_to_the_same_adapter(toys, tmp_path, monkeypatch):
    settings = mini_settings(toys, **SHORT)
    straight = train.train_adapter(toys, settings, tmp_path / "straight", progress=False)

    real_save = train.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the step-2 checkpoint

    class SlowClock:  # the killed process's clock: its first step seems to take 1000 s
        offset = 0.0

        @classmethod
        def perf_counter(cls):
            return time.perf_counter() + cls.offset

    real_inputs = train.item_inputs

    def first_step_takes_1000_seconds(*args, **kwargs):
        SlowClock.offset = 1000.0
        return real_inputs(*args, **kwargs)

    monkeypatch.setattr(train, "save_checkpoint", save_then_die)
    monkeypatch.setattr(train, "time", SlowClock)
    monkeypatch.setattr(train, "item_inputs", first_step_takes_1000_seconds)
    with pytest.raises(KeyboardInterrupt):
        train.train_adapter(toys, settings, tmp_path / "resumed", progress=False)
    assert not (tmp_path / "resumed").exists()
    monkeypatch.undo()
    resumed = train.train_adapter(toys, settings, tmp_path / "resumed", progress=False)

    assert adapter_meta(resumed)["resumed_at"] == 2 and adapter_meta(resumed)["resumes"] == 1
    # The seconds count both processes: the killed one's 1000 s (up to its checkpoint) and this one's.
    assert 1000 < adapter_meta(resumed)["seconds"] < 1000 + adapter_meta(straight)["seconds"] + 120
    assert adapter_meta(straight)["resumes"] == 0 and adapter_meta(straight)["seconds"] < 1000
    a, b = load_file(straight / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert adapter_meta(resumed)["history"] == adapter_meta(straight)["history"]
    assert not list(tmp_path.glob("*.checkpoint.pt"))


def test_torchrun_two_processes_with_gloo(toys):
    """`torchrun --nproc_per_node 2 -m harness adapt`: DDP on CPU, rank 0 prints and saves."""
    overrides = ["steps=2", "batch_items=4", "seed=7", "adapt_processes=2"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "HARNESS_PROFILE": "mini"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "harness", "adapt", "--dataset", "toys", *overrides],
                         capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("saved: ") == 1 and "low-rank weights" in out.stdout
    path = adapter_dir(toys, mini_settings(toys, steps=2, batch_items=4, seed=7, adapt_processes=2))
    assert adapter_meta(path)["processes"] == 2
    assert adapter_meta(path)["adapter_settings"]["batch_per_process"] == 2


def test_the_process_count_is_part_of_the_adapter_key_and_must_match(toys):
    """CMSA contrasts within each process: 1 and 2 processes are two adapters (keys computed,
    nothing trained), and training refuses a world size other than the one keyed."""
    one = mini_settings(toys, batch_items=4)
    two = mini_settings(toys, batch_items=4, adapt_processes=2)
    assert adapter_dir(toys, one) != adapter_dir(toys, two)
    assert adapter_settings(one)["batch_per_process"] == 4 and adapter_settings(two)["batch_per_process"] == 2
    with pytest.raises(HarnessError, match="adapt_processes=1"):
        train.check_settings(two, toys.n_items, 1, 64)
    with pytest.raises(HarnessError, match="adapt_processes=2"):
        train.check_settings(one, toys.n_items, 2, 64)


def test_extract_refuses_to_start_processes_an_untrained_adapter_is_not_keyed_for(capsys):
    assert cli(["extract", "-e", "sda", "-d", "toys", "--processes", "2", "steps=1", "seed=99"]) == 2
    assert "pass adapt_processes=2" in capsys.readouterr().err


def test_dtype_auto_is_keyed_as_what_it_resolves_to(toys):
    auto = mini_settings(toys, dtype="auto")
    assert adapter_settings(auto)["dtype"] == ("bfloat16" if torch.cuda.is_available() else "float32")
    fp32, bf16 = mini_settings(toys, dtype="fp32"), mini_settings(toys, dtype="bf16")
    assert adapter_dir(toys, auto) == adapter_dir(toys, bf16 if torch.cuda.is_available() else fp32)
    assert adapter_dir(toys, fp32) != adapter_dir(toys, bf16)


def test_adapt_refuses_experts_that_do_not_divide_the_rank(capsys):
    assert cli(["adapt", "--dataset", "toys", "--experts", "3"]) == 2
    assert "experts" in capsys.readouterr().err


def test_gradient_analysis_writes_a_csv(toys, tmp_path):
    import pandas as pd

    out = tmp_path / "gradients.csv"
    assert cli(["analyze", "gradients", "--dataset", "toys", "--batches", "2", "--csv", str(out),
                "steps=2", "batch_items=4"]) == 0
    table = pd.read_csv(out)
    assert sorted(zip(table["adapter"], table["module"])) == [
        ("lora", "k_proj"), ("lora", "q_proj"), ("moda", "k_proj"), ("moda", "q_proj")]
    assert table["cosine"].between(-1, 1).all() and (table["batches"] == 2).all()
