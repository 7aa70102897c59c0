"""Cache and result keys cover what changes a result: source content, dtype, grid identity.

(The SDA adapter's process count: tests/test_sda_train.py, beside the adapter's other keys.)
"""
from __future__ import annotations

import json
import os
import re

import pandas as pd
import pytest
import torch
from test_protocol import hand_spec

from harness.grid import run_grid
from protocol.data.prepare import prepare
from protocol.errors import HarnessError
from protocol.store import ResultStore


def test_an_edited_source_makes_the_prepared_data_set_stale(tmp_path):
    spec, out = hand_spec(tmp_path / "source"), tmp_path / "dataset"
    first = prepare(spec, out_dir=out)
    sequences = tmp_path / "source" / "sequences.txt"
    prepared = (out / "meta.json").stat().st_mtime_ns
    # Touched but unchanged: hashed again, still the same data set.
    os.utime(sequences, ns=(prepared + 10**9, prepared + 10**9))
    assert prepare(spec, out_dir=out).content_hash == first.content_hash
    # Edited (u5 loses its last item): refused, naming the file and the command that rebuilds it.
    lines = sequences.read_text().splitlines()
    sequences.write_text("\n".join(lines[:-1] + [lines[-1].rsplit(" ", 1)[0]]) + "\n")
    os.utime(sequences, ns=(prepared + 2 * 10**9, prepared + 2 * 10**9))
    # (the data set was prepared into an explicit folder: the command names it with --out)
    with pytest.raises(HarnessError, match=rf"is stale: .*sequences.txt changed .* data prepare --dataset protocol "
                                           rf"--out {re.escape(str(out))} --force"):
        prepare(spec, out_dir=out)
    rebuilt = prepare(spec, out_dir=out, force=True)
    assert rebuilt.content_hash != first.content_hash and rebuilt.targets["test"][5] == 28
    assert prepare(spec, out_dir=out).content_hash == rebuilt.content_hash  # fresh again


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    return prepare(hand_spec(root / "source"), out_dir=root / "dataset")


@pytest.mark.parametrize("name", ["qwenvl", "clip"])
def test_dtype_auto_is_keyed_as_what_it_resolves_to(hand, name):
    from extractors.store import cache_key, make_extractor, raw_dir

    def key(dtype):
        extractor = make_extractor(name, hand, "mini", {"dtype": dtype})
        return cache_key(extractor, hand), raw_dir(extractor, hand)

    here = "bf16" if torch.cuda.is_available() else "fp32"
    other = "fp32" if here == "bf16" else "bf16"
    assert key("auto") == key(here)  # the same computation, the same features and shards
    assert key("auto")[0] != key(other)[0] and key("auto")[1] != key(other)[1]


def test_two_grids_with_other_axes_or_settings_keep_two_summary_rows(hand, tmp_path):
    store = ResultStore(tmp_path)
    quiet = {"train.full_ranking": False, "train.progress": False}
    one = run_grid("pop", "protocol", store=store, overrides=quiet | {"grid.lr": [0.1]}, data=hand)
    two = run_grid("pop", "protocol", store=store, overrides=quiet | {"grid.lr": [0.1, 0.2]}, data=hand)
    seeded = run_grid("pop", "protocol", store=store, overrides=quiet | {"grid.lr": [0.1], "train.seed": 7},
                      data=hand)
    summary = pd.read_csv(one["summary"])
    assert len({one["row"]["grid_key"], two["row"]["grid_key"], seeded["row"]["grid_key"]}) == 3
    assert sorted(summary["axes"].map(lambda a: len(json.loads(a)["lr"]))) == [1, 1, 2]
    assert len(summary) == 3
    # The same grid again replaces its own row.
    again = run_grid("pop", "protocol", store=store, overrides=quiet | {"grid.lr": [0.1, 0.2]}, data=hand)
    assert again["row"]["grid_key"] == two["row"]["grid_key"] and len(pd.read_csv(one["summary"])) == 3
