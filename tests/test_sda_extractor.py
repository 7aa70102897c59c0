"""The sda extractor through the feature store and a VBPR run, on a 10-user slice of mini Toys."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from extractors.sda.store import adapter_dir, adapter_meta
from extractors.store import load_or_extract, make_extractor

FAST = {"steps": 3, "batch_items": 4, "pca_dim": 8}


@pytest.fixture(scope="module")
def small_toys(tmp_path_factory):
    from protocol.data.mini import make_mini
    from protocol.data.prepare import load_dataset

    source = tmp_path_factory.mktemp("toys-small") / "source"
    make_mini(REPO / "harness" / "bundled" / "toys", source, n_users=10)
    return load_dataset("toys", overrides={"path": str(source)})


def test_sda_features_carry_their_adapter_and_are_cached(small_toys):
    features = load_or_extract(small_toys, "sda", "mini", FAST, progress=False)
    settings = make_extractor("sda", small_toys, "mini", FAST).settings()
    path = adapter_dir(small_toys, settings)
    assert features.meta["adapter_key"] == adapter_meta(path)["key"] == path.name.split("-")[1]
    assert features.meta["adapter"]["steps"] == 3
    assert features.image.shape == features.text.shape == (small_toys.n_items, 8)
    assert np.isfinite(features.sequential_table()).all()
    again = load_or_extract(small_toys, "sda", "mini", FAST, progress=False)
    assert again.path == features.path and again.key == features.key
    # Another PCA width reuses the adapter (and the raw shards): nothing is trained again.
    wider = load_or_extract(small_toys, "sda", "mini", FAST | {"pca_dim": 16}, progress=False)
    assert wider.meta["adapter_key"] == features.meta["adapter_key"] and wider.key != features.key


def test_variants_train_their_own_adapters(small_toys):
    keys = {name: adapter_dir(small_toys, make_extractor(name, small_toys, "mini", FAST).settings()).name
            for name in ("sda", "sda-lora", "sda-infonce")}
    assert keys["sda"].startswith("moda-") and keys["sda-lora"].startswith("lora-")
    assert len(set(keys.values())) == 3
    # `adapt --adapter lora` (sda settings + adapter=lora) is the sda-lora adapter.
    lora = make_extractor("sda", small_toys, "mini", FAST | {"adapter": "lora"}).settings()
    assert adapter_dir(small_toys, lora).name == keys["sda-lora"]


def test_a_vbpr_run_on_sda_features_records_them(small_toys):
    from harness.runner import RunSpec, execute
    from recommenders import MODELS

    assert "vbpr" in MODELS.names()
    spec = RunSpec.resolve("vbpr", "toys", "sda", "mini", {"train.max_epochs": 1})
    out = execute(spec, dataset=small_toys)
    features = load_or_extract(small_toys, "sda", "mini", progress=False)
    assert set(out["metrics"]["feature_key"]) == {features.key}
    # The run's manifest leads to the feature set, whose meta names the adapter.
    from protocol.featureset import FeatureSet

    recorded = FeatureSet.load(out["manifest"]["feature_path"], small_toys)
    settings = make_extractor("sda", small_toys, "mini").settings()
    assert recorded.meta["adapter_key"] == adapter_meta(adapter_dir(small_toys, settings))["key"]
    # ... and every result row carries the adapter's key itself.
    assert set(out["metrics"]["adapter_key"]) == {recorded.meta["adapter_key"]}


def test_extractor_overrides_reach_the_extractor(small_toys):
    """`extractor.experts=2` on run/grid (Figure 4's N_e sweep) changes the adapter and the run."""
    from harness.runner import RunSpec

    spec = RunSpec.resolve("vbpr", "toys", "sda", "mini", {"extractor.experts": 2})
    assert spec.extractor_settings == {"experts": 2} and "experts" not in spec.params
    two = make_extractor("sda", small_toys, "mini", spec.extractor_settings)
    default = make_extractor("sda", small_toys, "mini")
    assert two.settings()["experts"] == 2
    assert adapter_dir(small_toys, two.settings()) != adapter_dir(small_toys, default.settings())
