"""export of the real Beauty 5-core: MMRec's layout round-trips; RecBole's files reproduce the split."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import SHARED_DATA
from harness.cli import main as cli_main
from protocol.data.export import export
from protocol.errors import HarnessError

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "amazon-beauty-5core").exists(),
                                reason="needs ../shared/data/amazon-beauty-5core")


def read_mmrec(out, name) -> pd.DataFrame:
    return pd.read_csv(out / f"{name}.inter", sep="\t")


def saved_features(dataset, folder, dataset_hash=None):
    from protocol.featureset import FeatureSet

    rng = np.random.default_rng(0)
    features = FeatureSet(rng.normal(size=(dataset.n_items, 6)).astype(np.float32),
                          rng.normal(size=(dataset.n_items, 4)).astype(np.float32),
                          {"dataset_hash": dataset_hash or dataset.content_hash})
    features.save(folder)
    return features


def test_mmrec_round_trip(beauty_5core, tmp_path):
    export(beauty_5core, "mmrec", tmp_path, features=saved_features(beauty_5core, tmp_path / "fs").path)
    inter = read_mmrec(tmp_path, beauty_5core.name)
    assert list(inter.columns) == ["userID", "itemID", "x_label"]
    train = inter[inter["x_label"] == 0]
    assert np.array_equal(train["userID"].to_numpy(), beauty_5core.train_users)
    assert np.array_equal(train["itemID"].to_numpy(), beauty_5core.train_items)
    for label, split in ((1, "valid"), (2, "test")):
        rows = inter[inter["x_label"] == label]
        assert np.array_equal(rows["userID"].to_numpy(), np.arange(beauty_5core.n_users))
        assert np.array_equal(rows["itemID"].to_numpy(), beauty_5core.targets[split])
    # MMRec sizes its tables as max id + 1: that must be the data set's counts.
    assert inter["userID"].max() + 1 == beauty_5core.n_users
    assert inter["itemID"].max() + 1 == beauty_5core.n_items
    config = yaml.safe_load((tmp_path / f"{beauty_5core.name}.yaml").read_text())
    assert config["inter_file_name"] == f"{beauty_5core.name}.inter"


def test_mmrec_copies_a_matching_feature_set(beauty_5core, tmp_path):
    features = saved_features(beauty_5core, tmp_path / "features")
    out = tmp_path / "mmrec"
    export(beauty_5core, "mmrec", out, features=features.path)
    assert np.array_equal(np.load(out / "image_feat.npy"), features.image)
    assert np.array_equal(np.load(out / "text_feat.npy"), features.text)
    config = yaml.safe_load((out / f"{beauty_5core.name}.yaml").read_text())
    assert (config["vision_feature_file"], config["text_feature_file"]) == ("image_feat.npy", "text_feat.npy")

    saved_features(beauty_5core, tmp_path / "other", dataset_hash="another")
    with pytest.raises(HarnessError, match="extract features for this data set again"):
        export(beauty_5core, "mmrec", tmp_path / "refused", features=tmp_path / "other")
    assert not (tmp_path / "refused" / "image_feat.npy").exists()


def test_recbole_atomic_files_reproduce_the_split(beauty_5core, tmp_path):
    name = beauty_5core.name
    export(beauty_5core, "recbole", tmp_path)
    inter = pd.read_csv(tmp_path / f"{name}.inter", sep="\t")
    assert list(inter.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    assert len(inter) == beauty_5core.meta["stats"]["interactions"]
    # RecBole's leave-one-out: order each user's rows by timestamp, last is test, second-last valid.
    ordered = inter.sample(frac=1, random_state=0).sort_values(["user_id:token", "timestamp:float"])
    last = ordered.groupby("user_id:token")["item_id:token"]
    assert np.array_equal(last.nth(-1).to_numpy(), beauty_5core.targets["test"])
    assert np.array_equal(last.nth(-2).to_numpy(), beauty_5core.targets["valid"])

    sizes = {s: len(pd.read_csv(tmp_path / f"{name}.{s}.inter", sep="\t")) for s in ("train", "valid", "test")}
    assert sizes == {"train": len(beauty_5core.train_users), "valid": beauty_5core.n_users,
                     "test": beauty_5core.n_users}
    test_rows = pd.read_csv(tmp_path / f"{name}.test.inter", sep="\t")
    assert np.array_equal(test_rows["item_id:token"].to_numpy(), beauty_5core.targets["test"])

    item = pd.read_csv(tmp_path / f"{name}.item", sep="\t", keep_default_na=False)
    assert list(item.columns) == ["item_id:token", "asin:token", "title:token_seq", "brand:token",
                                  "categories:token_seq", "price:float"]
    assert item["item_id:token"].tolist() == list(range(beauty_5core.n_items))
    assert item["asin:token"].tolist() == beauty_5core.items["asin"].tolist()
    # Token sequences: whitespace runs become one space, nothing else changes in these titles.
    assert item["title:token_seq"].tolist() == [" ".join(t.split()) for t in beauty_5core.items["title"]]


def test_recbole_text_fields_are_read_literally():
    from protocol.data.export import _atomic_text

    # A tab would split the field; a leading " would open a quoted field in RecBole's reader.
    assert _atomic_text('"12" brush\twith\nlines ') == "'12' brush with lines"


def test_recbole_categories_are_the_first_path_as_tokens():
    from protocol.data.export import _category_tokens

    assert _category_tokens('[["Toys & Games", "Board Games"], ["Gifts"]]') == "Toys_&_Games Board_Games"
    assert _category_tokens("") == ""


def test_mmrec_without_a_feature_set_is_refused_before_writing(beauty_5core, tmp_path):
    """MMRec's multimodal models cannot load a YAML that names no feature files."""
    with pytest.raises(HarnessError, match="pass --features FOLDER"):
        export(beauty_5core, "mmrec", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_cli_and_bad_format(beauty_5core, tmp_path, capsys):
    folder = saved_features(beauty_5core, tmp_path / "fs").path
    assert cli_main(["data", "export", "--dataset", str(beauty_5core.path), "--format", "mmrec",
                     "--out", str(tmp_path), "--features", str(folder)]) == 0
    assert "exported" in capsys.readouterr().out
    assert len(read_mmrec(tmp_path, beauty_5core.name)) == beauty_5core.meta["stats"]["interactions"]
    with pytest.raises(HarnessError, match="unknown export format 'mmerc'"):
        export(beauty_5core, "mmerc", tmp_path)
    with pytest.raises(HarnessError, match="drop --features"):
        export(beauty_5core, "recbole", tmp_path, features=tmp_path)
