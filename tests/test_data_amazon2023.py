"""prepare from raw Amazon Reviews 2023 files that the tests write: items keyed by parent_asin,
the 2014 item columns, both recipes, and bad input named by file and line."""
from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pandas as pd
import pytest
from test_data_raw import fails, out_dir  # noqa: F401 (a fixture): one line, nothing written, no temp folder

from harness.cli import main as cli_main
from protocol.data.prepare import prepare
from protocol.data.spec import DatasetSpec

# (user, parent_asin, timestamp in ms). With min_count 2 (llmemb): P4 and P5 (1 review each) go,
# so u4 goes; u2's second P1 is a repeat (dropped after the pass); u5 keeps P1, P2 only (2 < 3)
# and goes. Left: u1, u2, u3, u6, u7 with 3 items each.
REVIEWS = [
    ("u1", "P1", 1000), ("u1", "P2", 2000), ("u1", "P3", 3000),
    ("u2", "P2", 1500), ("u2", "P1", 2500), ("u2", "P3", 3500), ("u2", "P1", 4500),
    ("u3", "P3", 100), ("u3", "P1", 200), ("u3", "P2", 300),
    ("u4", "P4", 10), ("u4", "P5", 20),
    ("u5", "P1", 50), ("u5", "P2", 60), ("u5", "P1", 70),
    ("u6", "P6", 1), ("u6", "P7", 2), ("u6", "P1", 3),
    ("u7", "P7", 1), ("u7", "P6", 2), ("u7", "P2", 3),
]
# Meta order decides item indices (kept items: P3 0, P1 1, P2 2, P6 3, P7 4); P9 is never reviewed.
RECORD_P3 = {
    "main_category": "All Beauty", "title": "Tinted Lip Balm", "average_rating": 4.5, "rating_number": 12,
    "features": ["Soft", "Tinted"], "description": ["Made in France.", "", "4 g."], "price": 7.5,
    "images": [{"thumb": "https://img/P3-alt-t.jpg", "large": "https://img/P3-alt.jpg", "variant": "PT01",
                "hi_res": None},
               {"thumb": "https://img/P3-t.jpg", "large": "https://img/P3-main.jpg", "variant": "MAIN",
                "hi_res": "https://img/P3-hi.jpg"}],
    "videos": [{"title": "demo", "url": "https://video/P3"}], "store": "Acme",
    "categories": ["Beauty & Personal Care", "Skin Care", "Lips"], "details": {"Brand": "Acme"},
    "parent_asin": "P3", "bought_together": None,
}
RECORD_P1 = {"title": "Brush", "description": [], "price": None, "store": None, "categories": [],
             "images": [{"large": "https://img/P1-a.jpg", "variant": "PT01"},
                        {"large": "https://img/P1-b.jpg", "variant": "PT02"}],
             "parent_asin": "P1"}
META = [RECORD_P3, {"parent_asin": "P9", "title": "never bought"}, RECORD_P1,
        {"parent_asin": "P2", "title": "Comb", "images": []},
        *({"parent_asin": p, "title": f"item {p}"} for p in ("P6", "P7", "P4", "P5"))]


def review_lines(rows=REVIEWS) -> list[str]:
    rows = list(rows)
    random.Random(3).shuffle(rows)  # file order must not matter: time orders each history
    return [json.dumps({"rating": 5.0, "title": "ok", "text": "fine", "images": [], "asin": f"{p}-variant",
                        "parent_asin": p, "user_id": u, "timestamp": t, "helpful_vote": 0,
                        "verified_purchase": True}) for u, p, t in rows]


def meta_lines(records=META) -> list[str]:
    return [json.dumps(r) for r in records]


def write_lines(path, lines, gz=None) -> str:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if (gz if gz is not None else path.suffix == ".gz") else data)
    return str(path)


@pytest.fixture()
def raw(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    write_lines(folder / "All_Beauty.jsonl.gz", review_lines())
    write_lines(folder / "meta_All_Beauty.jsonl.gz", meta_lines())
    return folder


def spec_for(folder, **changes) -> DatasetSpec:
    values = dict(name="beauty23", domain="beauty", source="amazon2023",
                  reviews=str(folder / "All_Beauty.jsonl.gz"), meta=str(folder / "meta_All_Beauty.jsonl.gz"),
                  recipe="llmemb", min_count=2, min_user_len=3, n_negatives=2, negative_seed=0)
    return DatasetSpec(**(values | changes))


def table(dataset, name) -> pd.DataFrame:
    return pd.read_csv(dataset.path / name, dtype={"raw_id": str})


def test_prepared_interactions_and_split_are_the_hand_computed_ones(raw, tmp_path):
    ds = prepare(spec_for(raw), out_dir=tmp_path / "ds")
    assert ds.items["raw_id"].tolist() == ["P3", "P1", "P2", "P6", "P7"]
    assert table(ds, "users.csv")["raw_id"].tolist() == ["u1", "u2", "u3", "u6", "u7"]
    rows = table(ds, "interactions.csv")
    assert rows.to_dict("list") == {
        "user": [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4],
        "item": [1, 2, 0, 2, 1, 0, 0, 1, 2, 3, 4, 1, 4, 3, 2],
        "time": [1000, 2000, 3000, 1500, 2500, 3500, 100, 200, 300, 1, 2, 3, 1, 2, 3],  # ms, as in the file
        "split": ["train", "valid", "test"] * 5,
    }
    assert ds.targets["test"].tolist() == [0, 0, 2, 1, 2]
    assert ds.items["popularity"].tolist() == [3, 4, 4, 2, 2]
    assert ds.items["is_tail"].tolist() == [True, False, False, True, True]  # fewer than 4
    assert ds.meta["stats"] | {"sparsity": 0} == {
        "users": 5, "items": 5, "interactions": 15, "sparsity": 0, "avg_sequence_length": 3.0,
        "tail_items": 3, "tail_test_users": 2}
    assert ds.meta["recipe"]["source"] == "amazon2023"
    for split in ("valid", "test"):  # the two items each user never bought
        outside = [sorted(set(range(5)) - set(rows.loc[rows["user"] == u, "item"])) for u in range(5)]
        assert np.sort(ds.negatives[split], axis=1).tolist() == outside


def test_kcore_recipe_on_the_2023_files(raw, tmp_path):
    # min_count 2, iterative after de-duplication: P4, P5 (1 each) go, then u4; u5 keeps P1, P2
    # (2 >= 2) through the core and goes only by min_user_len 3: the llmemb result again.
    ds = prepare(spec_for(raw, recipe="kcore"), out_dir=tmp_path / "k")
    assert ds.items["raw_id"].tolist() == ["P3", "P1", "P2", "P6", "P7"]
    assert table(ds, "users.csv")["raw_id"].tolist() == ["u1", "u2", "u3", "u6", "u7"]
    assert ds.meta["stats"]["interactions"] == 15 and ds.meta["recipe"]["recipe"] == "kcore"


def test_meta_maps_to_the_2014_item_columns_and_keeps_the_record(raw, tmp_path):
    items = prepare(spec_for(raw), out_dir=tmp_path / "ds").items.set_index("raw_id")
    p3 = items.loc["P3"]
    assert p3["asin"] == "P3"
    assert p3["title"] == "Tinted Lip Balm"
    assert p3["brand"] == "Acme"  # from store
    assert json.loads(p3["categories"]) == [["Beauty & Personal Care", "Skin Care", "Lips"]]  # one path
    assert float(p3["price"]) == 7.5
    assert p3["description"] == "Made in France. 4 g."  # the list joined, empty paragraphs left out
    assert p3["image"] == "https://img/P3-main.jpg"  # the MAIN variant's large image
    # the record in stored order, without the URL lists and bought_together
    assert list(p3["meta"]) == ["main_category", "title", "average_rating", "rating_number", "features",
                                "description", "price", "store", "categories", "details", "parent_asin"]
    assert p3["meta"]["features"] == ["Soft", "Tinted"] and p3["meta"]["details"] == {"Brand": "Acme"}
    p1 = items.loc["P1"]
    assert p1["image"] == "https://img/P1-a.jpg"  # no MAIN variant: the first large image
    assert json.loads(p1["categories"]) == []
    assert [p1[c] if isinstance(p1[c], str) else "" for c in ("brand", "price", "description")] == ["", "", ""]
    assert items.loc["P2", "image"] == "" or pd.isna(items.loc["P2", "image"])


def test_plain_copies_under_other_names_give_the_same_content(raw, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    write_lines(plain / "my_reviews.jsonl", review_lines())  # not a category name: not checked
    write_lines(plain / "meta_All_Beauty.jsonl", meta_lines())
    first = prepare(spec_for(raw), out_dir=tmp_path / "a").content_hash
    again = prepare(spec_for(plain, reviews=str(plain / "my_reviews.jsonl"), meta=str(plain / "meta_All_Beauty.jsonl")),
                    out_dir=tmp_path / "b").content_hash
    assert first == again


def test_cli_prepares_a_config_with_source_amazon2023(raw, tmp_path, monkeypatch, capsys):
    """A configured data set's relative raw paths are under HARNESS_RAW (here through the paper
    profile of `beauty`, its source switched to amazon2023 by overrides)."""
    monkeypatch.setenv("HARNESS_RAW", str(raw.parent))
    out = tmp_path / "out"
    code = cli_main(["data", "prepare", "--dataset", "beauty", "--profile", "paper", "--out", str(out),
                     "source=amazon2023", "reviews=raw/All_Beauty.jsonl.gz", "meta=raw/meta_All_Beauty.jsonl.gz",
                     "min_count=2", "n_negatives=2"])
    assert code == 0, capsys.readouterr().err
    assert "prepared beauty: 5 users, 5 items" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["recipe"]["source"] == "amazon2023" and meta["domain"] == "beauty"
    assert sorted(meta["sources"]) == ["All_Beauty.jsonl.gz", "meta_All_Beauty.jsonl.gz"]


# ---- bad input: one line naming the file (and line), nothing written --------------------------

def test_bad_review_line_names_file_and_line(raw, out_dir):
    lines = review_lines()
    lines[4] = lines[4][:-3]
    path = write_lines(raw / "All_Beauty.jsonl.gz", lines)
    fails(spec_for(raw), out_dir, f"{path}:5:", "not a JSON line")


def test_review_without_timestamp_names_the_2023_keys(raw, out_dir):
    lines = review_lines()
    lines[2] = json.dumps({"user_id": "u1", "parent_asin": "P1", "rating": 5.0})
    path = write_lines(raw / "All_Beauty.jsonl.gz", lines)
    fails(spec_for(raw), out_dir, f"{path}:3:", "user_id, parent_asin, timestamp")


def test_bad_meta_line_and_missing_parent_asin_name_file_and_line(raw, out_dir):
    lines = meta_lines()
    lines[1] = "{'parent_asin': 'P9'}"  # a Python literal is not JSON
    path = write_lines(raw / "meta_All_Beauty.jsonl.gz", lines)
    fails(spec_for(raw), out_dir, f"{path}:2:", "not a JSON record")
    lines[1] = json.dumps({"asin": "P9", "title": "2014 key"})
    write_lines(raw / "meta_All_Beauty.jsonl.gz", lines)
    fails(spec_for(raw), out_dir, f"{path}:2:", "'parent_asin' string")


def test_truncated_gzip_names_file_line_and_the_2023_download(raw, out_dir):
    path = raw / "All_Beauty.jsonl.gz"
    write_lines(path, review_lines(REVIEWS * 300))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fails(spec_for(raw), out_dir, str(path), "truncated or corrupt", "Amazon Reviews 2023")


def test_meta_without_a_reviewed_item_names_the_meta_file(raw, out_dir):
    path = write_lines(raw / "meta_All_Beauty.jsonl.gz", meta_lines([r for r in META if r["parent_asin"] != "P6"]))
    fails(spec_for(raw), out_dir, path, "no entry for 1 interacted items", "'P6'")


def test_file_names_declare_categories_that_must_agree(raw, out_dir):
    write_lines(raw / "meta_Toys_and_Games.jsonl.gz", meta_lines())
    fails(spec_for(raw, meta=str(raw / "meta_Toys_and_Games.jsonl.gz")), out_dir,
          "reviews file is All_Beauty but the meta file is Toys_and_Games")
    fails(spec_for(raw, meta=str(raw / "meta_All_Beuaty.jsonl.gz")), out_dir,
          "unknown Amazon 2023 category 'All_Beuaty'", "Did you mean 'All_Beauty'")


@pytest.mark.parametrize("changes,fragment", [
    ({"ratings": "ratings.csv", "reviews": ""}, "needs exactly one of reviews=..."),
    ({"meta": ""}, "meta=meta_<Category>.jsonl.gz"),
    ({"meta": "/no/such/meta_All_Beauty.jsonl.gz"}, "expected at /no/such/meta_All_Beauty.jsonl.gz"),
])
def test_incomplete_or_missing_files(raw, out_dir, changes, fragment):
    fails(spec_for(raw, **changes), out_dir, fragment)


def test_the_shipped_example_config_prepares_from_harness_raw(tmp_path, monkeypatch, capsys):
    """configs/datasets/beauty-2023.yaml: paper profile, files under HARNESS_RAW/beauty-2023/."""
    folder = tmp_path / "raw" / "beauty-2023"
    folder.mkdir(parents=True)
    write_lines(folder / "All_Beauty.jsonl.gz", review_lines())
    write_lines(folder / "meta_All_Beauty.jsonl.gz", meta_lines())
    monkeypatch.setenv("HARNESS_RAW", str(tmp_path / "raw"))
    out = tmp_path / "out"
    code = cli_main(["data", "prepare", "--dataset", "beauty-2023", "--profile", "paper", "--out", str(out),
                     "min_count=2", "n_negatives=2"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["name"], meta["recipe"]["source"], meta["recipe"]["recipe"]) == ("beauty-2023", "amazon2023", "llmemb")
    assert (meta["stats"]["users"], meta["stats"]["items"], meta["stats"]["interactions"]) == (5, 5, 15)
