"""prepare from raw Amazon 2014 files that the tests write: both recipes, meta literals, bad input."""
from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pandas as pd
import pytest

from harness.cli import main as cli_main
from protocol.data.amazon import read_amazon_source
from protocol.data.build import build_dataset
from protocol.data.prepare import prepare
from protocol.data.recipes import apply_recipe
from protocol.data.spec import DatasetSpec
from protocol.errors import HarnessError

# (user, item, time). U1-U3 x A-C and U7-U9 x G-I are dense blocks; U4 buys D, E twice and F.
# With min_count 3 the single pass (llmemb) drops only F, keeps D (raw count 3, U4 included) and
# E (raw count 3: the repeat counts), then drops U4 (D, E after de-duplication: 2 < 3).
# The iterative k-core de-duplicates first: E (2) and F (1) go, then U4 (D only), then D (2).
INTERACTIONS = [
    ("U1", "A", 10), ("U1", "B", 20), ("U1", "C", 30), ("U1", "D", 40),
    ("U2", "A", 11), ("U2", "B", 21), ("U2", "C", 31), ("U2", "D", 41),
    ("U3", "A", 12), ("U3", "B", 22), ("U3", "C", 32), ("U3", "E", 42),
    ("U4", "D", 13), ("U4", "E", 23), ("U4", "E", 33), ("U4", "F", 43),
    ("U7", "G", 1), ("U7", "H", 2), ("U7", "I", 3),
    ("U8", "G", 1), ("U8", "H", 2), ("U8", "I", 3),
    ("U9", "G", 1), ("U9", "H", 2), ("U9", "I", 3),
]
# Meta order decides item indices; Z is never bought. Single quotes and a double-quoted title
# with an apostrophe: Python literals, not JSON.
META_ORDER = ["I", "H", "G", "Z", "F", "E", "D", "C", "B", "A"]
RECORD_A = ("{'asin': 'A', 'description': 'Soft balm, 4 g', 'title': \"Kid's Lip Balm \u00e9\", "
            "'price': 4.5, 'imUrl': 'http://example.invalid/A.jpg', "
            "'related': {'also_bought': ['B', 'C']}, 'salesRank': {'Beauty': 12}, "
            "'categories': [['Beauty', 'Skin Care', 'Lips'], ['Beauty', 'Gifts']], 'brand': 'Acme'}")


def meta_lines(asins=META_ORDER) -> list[str]:
    return [RECORD_A if a == "A" else f"{{'asin': '{a}', 'title': 'item {a}'}}" for a in asins]


def review_lines(rows=INTERACTIONS) -> list[str]:
    return [json.dumps({"reviewerID": u, "asin": i, "overall": 5.0, "unixReviewTime": t}) for u, i, t in rows]


def write_lines(path, lines, gz=None) -> str:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if (gz if gz is not None else path.suffix == ".gz") else data)
    return str(path)


def shuffled(rows):
    rows = list(rows)
    random.Random(7).shuffle(rows)  # file order must not matter: time orders each history
    return rows


@pytest.fixture()
def raw(tmp_path):
    """A folder with Beauty-named reviews (gzip), ratings (CSV) and meta (gzip) files."""
    folder = tmp_path / "raw"
    folder.mkdir()
    write_lines(folder / "reviews_Beauty.json.gz", review_lines(shuffled(INTERACTIONS)))
    write_lines(folder / "ratings_Beauty.csv", [f"{u},{i},5.0,{t}" for u, i, t in shuffled(INTERACTIONS)])
    write_lines(folder / "meta_Beauty.json.gz", meta_lines())
    return folder


def spec_for(folder, **changes) -> DatasetSpec:
    values = dict(name="rawbeauty", domain="beauty", source="amazon",
                  reviews=str(folder / "reviews_Beauty.json.gz"), meta=str(folder / "meta_Beauty.json.gz"),
                  recipe="llmemb", min_count=3, min_user_len=3, n_negatives=2, negative_seed=0)
    return DatasetSpec(**(values | changes))


def histories(dataset) -> dict[str, list[str]]:
    """Raw user id -> raw item ids in time order, read back from the dataset directory."""
    users = pd.read_csv(dataset.path / "users.csv", dtype={"raw_id": str})["raw_id"].to_numpy()
    items = dataset.items["raw_id"].to_numpy()
    rows = pd.read_csv(dataset.path / "interactions.csv")
    out: dict[str, list[str]] = {}
    for u, i in zip(rows["user"], rows["item"]):
        out.setdefault(users[u], []).append(items[i])
    return out


EXPECTED = {
    "llmemb": {"U1": list("ABCD"), "U2": list("ABCD"), "U3": list("ABCE"),
               "U7": list("GHI"), "U8": list("GHI"), "U9": list("GHI")},
    "kcore": {"U1": list("ABC"), "U2": list("ABC"), "U3": list("ABC"),
              "U7": list("GHI"), "U8": list("GHI"), "U9": list("GHI")},
}


@pytest.mark.parametrize("recipe", ["llmemb", "kcore"])
def test_recipes_keep_exactly_the_expected_histories(raw, tmp_path, recipe):
    ds = prepare(spec_for(raw, recipe=recipe), out_dir=tmp_path / recipe)
    assert histories(ds) == EXPECTED[recipe]
    kept = {i for h in EXPECTED[recipe].values() for i in h}
    assert ds.items["raw_id"].tolist() == [a for a in META_ORDER if a in kept]  # meta-file order
    assert ds.n_users == 6 and ds.n_items == len(kept)
    assert ds.meta["stats"]["interactions"] == sum(len(h) for h in EXPECTED[recipe].values())


def test_split_is_last_test_second_last_valid_by_time(raw, tmp_path):
    ds = prepare(spec_for(raw), out_dir=tmp_path / "ds")
    raw_item = ds.items["raw_id"].to_numpy()
    users = pd.read_csv(ds.path / "users.csv", dtype={"raw_id": str})["raw_id"].tolist()
    assert {u: raw_item[ds.targets["test"][k]] for k, u in enumerate(users)} == {
        "U1": "D", "U2": "D", "U3": "E", "U7": "I", "U8": "I", "U9": "I"}
    assert {u: raw_item[ds.targets["valid"][k]] for k, u in enumerate(users)} == {
        "U1": "C", "U2": "C", "U3": "C", "U7": "H", "U8": "H", "U9": "H"}
    for split in ("valid", "test"):
        negatives = ds.negatives[split]
        assert negatives.shape == (6, 2)
        for u, history in enumerate(histories(ds).values()):
            assert not set(raw_item[negatives[u]]) & set(history)


def test_python_literal_meta_maps_fields_and_keeps_key_order(raw, tmp_path):
    items = prepare(spec_for(raw), out_dir=tmp_path / "ds").items.set_index("raw_id")
    a = items.loc["A"]
    assert a["title"] == "Kid's Lip Balm \u00e9"
    assert a["brand"] == "Acme"
    assert json.loads(a["categories"]) == [["Beauty", "Skin Care", "Lips"], ["Beauty", "Gifts"]]
    assert float(a["price"]) == 4.5
    assert a["description"] == "Soft balm, 4 g"
    assert a["image"] == "http://example.invalid/A.jpg"
    assert a["asin"] == "A"
    # The raw record in stored order, without the bulky `related` lists.
    assert list(a["meta"]) == ["asin", "description", "title", "price", "imUrl", "salesRank",
                               "categories", "brand"]
    assert a["meta"]["salesRank"] == {"Beauty": 12}
    assert items.loc["B", "title"] == "item B" and items.loc["B", "image"] == ""


def test_related_is_dropped_but_a_text_quoting_it_is_kept_whole(tmp_path):
    from protocol.data.amazon import read_meta

    path = write_lines(tmp_path / "meta_Beauty.json", [
        "{'related': {'also_bought': ['B']}, 'asin': 'A'}",
        "{'asin': 'B', 'title': \"x, 'related': {'a': ['b']}, y\", 'related': {'also_viewed': ['A']}, "
        "'brand': 'Z'}",
        "{'asin': 'C', 'related': {'bought_together': ['A']}}",
    ])
    meta = read_meta(path)["meta"].tolist()
    assert meta == [{"asin": "A"}, {"asin": "B", "title": "x, 'related': {'a': ['b']}, y", "brand": "Z"},
                    {"asin": "C"}]


def test_reviews_gzip_plain_and_ratings_csv_give_the_same_content(raw, tmp_path):
    plain = raw / "plain"
    plain.mkdir()
    write_lines(plain / "reviews_Beauty_5.json", review_lines(shuffled(INTERACTIONS)))  # 5-core name
    write_lines(plain / "meta_Beauty.json", meta_lines())
    hashes = {
        "gzip reviews": prepare(spec_for(raw), out_dir=tmp_path / "a").content_hash,
        "plain files": prepare(spec_for(plain, reviews=str(plain / "reviews_Beauty_5.json"),
                                        meta=str(plain / "meta_Beauty.json")), out_dir=tmp_path / "b").content_hash,
        "ratings csv": prepare(spec_for(raw, reviews="", ratings=str(raw / "ratings_Beauty.csv")),
                               out_dir=tmp_path / "c").content_hash,
    }
    assert len(set(hashes.values())) == 1, hashes


def test_source_hashes_are_recorded(raw, tmp_path):
    from protocol.fileio import file_sha256

    meta = prepare(spec_for(raw), out_dir=tmp_path / "ds").meta
    assert meta["sources"] == {name: file_sha256(raw / name)
                               for name in ("reviews_Beauty.json.gz", "meta_Beauty.json.gz")}


# ---- bad input: one HarnessError naming the file (and line), nothing written -----------------

def fails(spec, out_dir, *fragments):
    with pytest.raises(HarnessError) as info:
        prepare(spec, out_dir=out_dir)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    assert not out_dir.exists() and list(out_dir.parent.iterdir()) == []  # no temp folder either
    return message


@pytest.fixture()
def out_dir(tmp_path):
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "ds"


def test_truncated_gzip_names_file_and_line(raw, out_dir):
    path = raw / "reviews_Beauty.json.gz"
    many = review_lines(INTERACTIONS * 200)  # big enough that the cut lands mid-stream
    write_lines(path, many)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = fails(spec_for(raw), out_dir, str(path), "truncated or corrupt", "download it")
    line = int(message.split("cannot read line ")[1].split(" ")[0])
    assert 1 < line < len(many)


def test_damaged_gzip_header_names_file(raw, out_dir):
    path = raw / "meta_Beauty.json.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 30)  # gzip magic, then no valid header
    fails(spec_for(raw), out_dir, str(path), "cannot read line 1", "BadGzipFile")


def test_malformed_review_line_names_file_and_line(raw, out_dir):
    lines = review_lines()
    lines[2] = lines[2][:-5]  # cut the closing of the JSON object
    path = write_lines(raw / "reviews_Beauty.json.gz", lines)
    fails(spec_for(raw), out_dir, f"{path}:3:", "not a JSON line")


def test_review_without_time_names_file_and_line(raw, out_dir):
    lines = review_lines()
    lines[1] = json.dumps({"reviewerID": "U1", "asin": "B"})
    path = write_lines(raw / "reviews_Beauty.json.gz", lines)
    fails(spec_for(raw), out_dir, f"{path}:2:", "unixReviewTime")


def test_malformed_ratings_line_names_file_and_line(raw, out_dir):
    path = write_lines(raw / "ratings_Beauty.csv", ["user,item,rating,time", "U1,A,5.0,10"])
    fails(spec_for(raw, reviews="", ratings=path), out_dir, f"{path}:1:", "no header line")
    path = write_lines(raw / "ratings_Beauty.csv", ["U1,A,5.0,10", "U1,B,20"])
    fails(spec_for(raw, reviews="", ratings=path), out_dir, f"{path}:2:", "4 fields")


def test_malformed_meta_line_names_file_and_line(raw, out_dir):
    lines = meta_lines()
    lines[4] = "{'asin': 'F', 'title': }"
    path = write_lines(raw / "meta_Beauty.json.gz", lines)
    fails(spec_for(raw), out_dir, f"{path}:5:", "Python-literal")


def test_meta_is_never_evaluated_as_code(raw, out_dir, tmp_path):
    marker = tmp_path / "executed"
    lines = meta_lines()
    lines[0] = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    path = write_lines(raw / "meta_Beauty.json.gz", lines)
    fails(spec_for(raw), out_dir, f"{path}:1:")
    assert not marker.exists()


def test_meta_without_the_reviewed_items_names_the_meta_file(raw, out_dir):
    path = write_lines(raw / "meta_Beauty.json.gz", meta_lines([a for a in META_ORDER if a != "D"]))
    fails(spec_for(raw), out_dir, path, "no entry for 1 interacted items", "'D'", "same category")


def test_unknown_category_suggests_the_close_one(raw, out_dir):
    spec = spec_for(raw, reviews=str(raw / "reviews_Beuaty.json.gz"))
    fails(spec, out_dir, "reviews_Beuaty.json.gz", "unknown Amazon 2014 category 'Beuaty'",
          "Did you mean 'Beauty'")


def test_reviews_and_meta_of_different_categories_are_refused(raw, out_dir):
    write_lines(raw / "meta_Toys_and_Games.json.gz", meta_lines())
    spec = spec_for(raw, meta=str(raw / "meta_Toys_and_Games.json.gz"))
    fails(spec, out_dir, "reviews file is Beauty but the meta file is Toys_and_Games")


def test_missing_file_says_where_it_was_expected(raw, out_dir):
    (raw / "meta_Beauty.json.gz").unlink()
    fails(spec_for(raw), out_dir, "meta file meta_Beauty.json.gz is missing",
          f"expected at {raw / 'meta_Beauty.json.gz'}")


@pytest.mark.parametrize("changes,fragment", [
    ({"ratings": "ratings_Beauty.csv"}, "exactly one of reviews=... or ratings=..."),
    ({"reviews": ""}, "exactly one of reviews=... or ratings=..."),
    ({"meta": ""}, "has no meta file"),
])
def test_incomplete_source_settings(raw, out_dir, changes, fragment):
    fails(spec_for(raw, **changes), out_dir, fragment)


def test_more_negatives_than_the_catalogue_allows(raw, out_dir):
    # kcore keeps 6 items and users with 3 of them: at most 3 negatives each.
    fails(spec_for(raw, recipe="kcore", n_negatives=4), out_dir,
          "cannot draw 4 negatives", "lower n_negatives to at most 3")


def test_failure_while_writing_keeps_the_previous_dataset(raw, tmp_path):
    spec = spec_for(raw)
    out = tmp_path / "ds"
    before = prepare(spec, out_dir=out).content_hash
    inter, items, hashes, where = read_amazon_source(spec)
    inter = apply_recipe(inter, spec.recipe, spec.min_count, spec.min_user_len)

    def render_then_fail(folder, table):
        (folder / "images").mkdir()
        (folder / "images" / "0.png").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        build_dataset(out, inter, items, spec, hashes, where, render_images=render_then_fail)
    assert json.loads((out / "meta.json").read_text())["content_hash"] == before
    assert not (out / "images").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "raw"]  # no temp folders left


def test_cli_prints_one_line_and_exits_2(raw, capsys):
    code = cli_main(["data", "prepare", "--dataset", "beauty", "--profile", "paper",
                     f"reviews={raw / 'reviews_Beuaty.json.gz'}", f"meta={raw / 'meta_Beauty.json.gz'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: reviews file reviews_Beuaty.json.gz")


def test_negatives_are_distinct_per_row(raw, tmp_path):
    ds = prepare(spec_for(raw, n_negatives=4), out_dir=tmp_path / "ds")
    for split in ("valid", "test"):
        rows = np.sort(ds.negatives[split], axis=1)
        assert (np.diff(rows, axis=1) > 0).all()


def test_out_dir_holding_other_settings_is_not_reused(raw, tmp_path):
    out = tmp_path / "ds"
    first = prepare(spec_for(raw), out_dir=out)
    assert prepare(spec_for(raw), out_dir=out).content_hash == first.content_hash  # same spec: reused
    with pytest.raises(HarnessError, match="prepared with other settings.*add --force"):
        prepare(spec_for(raw, recipe="kcore"), out_dir=out)
    assert prepare(spec_for(raw, recipe="kcore"), out_dir=out, force=True).n_items == 6


def test_a_new_domain_is_a_new_dataset_directory(raw):
    from protocol.data.prepare import dataset_dir

    assert dataset_dir(spec_for(raw, domain="toys")) != dataset_dir(spec_for(raw))
