"""The Sports data set: the real 5-core, its bundled mini subset, HTML titles, items without text.

Expected values come from the source files in ../shared/data (counted here or by hand), never
from the code under test.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "data" / "amazon-sports-5core"
BUNDLED = REPO / "harness" / "bundled" / "sports"
# Item 20 of the source, as it stands in items.tsv and as read by hand with its entities resolved.
RAW_TITLE_20 = "Fobus Standard Holster RH Paddle SWMP S&amp;W M&amp;P 9mm, .40, .45 (compact &amp; full size), SD 9 &amp;40"
TITLE_20 = "Fobus Standard Holster RH Paddle SWMP S&W M&P 9mm, .40, .45 (compact & full size), SD 9 &40"


def _lines(folder: Path) -> list[str]:
    return (folder / "sequences.txt").read_text().splitlines()


@pytest.fixture(scope="module")
def sports_5core():
    from protocol.data.prepare import load_dataset

    assert SOURCE.is_dir(), f"{SOURCE} is missing: the Sports 5-core ships in ../shared/data"
    return load_dataset("sports-5core")


def test_sports_5core_counts(sports_5core):
    stats = sports_5core.meta["stats"]
    assert (sports_5core.n_users, sports_5core.n_items, stats["interactions"]) == (35598, 18357, 296337)
    assert len(sports_5core.train_users) == 296337 - 2 * 35598
    # The data README: 101 items have no title; every item is in the 5-core, so none is tail.
    assert (sports_5core.items["title"] == "").sum() == 101
    assert stats["tail_items"] == 0


def test_html_entities_are_unescaped(sports_5core):
    from extractors import prompts

    row = (SOURCE / "items.tsv").read_text().splitlines()[20].split("\t")
    assert row[:3] == ["20", "B001DCD6JG", RAW_TITLE_20]  # the source keeps the entities
    item = sports_5core.items.set_index(sports_5core.items["raw_id"].astype(str)).loc["20"]
    assert item["title"] == TITLE_20
    assert item["image"] == row[3]  # image_url is the item table's image column ...
    # ... and stays out of the meta record, so the paper's text prompt holds no URL.
    assert prompts.text_prompt(item["meta"], "sports") == (
        "The sports item has the following attributes: \n asin is B001DCD6JG; title is " + TITLE_20)
    titles = sports_5core.items["title"]
    assert not titles.str.contains("&amp;|&quot;|&reg;|&#153;", regex=True).any()
    assert titles.str.contains("™").any()  # &#153; is the Windows-1252 trade mark sign


def test_mini_sports_keeps_2000_whole_histories():
    source = {line.split()[0]: line for line in _lines(SOURCE)}
    lines = _lines(BUNDLED)
    assert len(lines) == len({line.split()[0] for line in lines}) == 2000
    assert all(source[line.split()[0]] == line for line in lines)
    used = {item for line in lines for item in line.split()[1:]}
    source_rows = {r.split("\t")[0]: r for r in (SOURCE / "items.tsv").read_text().splitlines()[1:]}
    rows = (BUNDLED / "items.tsv").read_text().splitlines()
    assert rows[0] == "item_id\tasin\ttitle\timage_url"
    assert {r.split("\t")[0] for r in rows[1:]} == used and len(rows) - 1 == len(used)
    assert all(source_rows[r.split("\t")[0]] == r for r in rows[1:])  # raw titles, as in the source


def test_mini_sports_is_rebuilt_by_the_documented_rule(tmp_path):
    from protocol.data.mini import make_mini

    make_mini(SOURCE, tmp_path / "sports", n_users=2000, seed=0)
    for name in ("sequences.txt", "items.tsv"):
        assert (tmp_path / "sports" / name).read_bytes() == (BUNDLED / name).read_bytes()


def test_sports_prepare_stats_and_a_pop_run_from_the_cli(capsys):
    from protocol.config import results_dir

    assert main(["data", "prepare", "--dataset", "sports"]) == 0
    lines = _lines(BUNDLED)
    n_items = len({item for line in lines for item in line.split()[1:]})
    assert f"prepared sports: 2000 users, {n_items} items" in capsys.readouterr().out
    assert main(["data", "stats", "--dataset", "sports"]) == 0
    stats = pd.read_csv(results_dir() / "stats" / "sports.csv").iloc[0]
    assert (stats["users"], stats["items"]) == (2000, n_items)
    assert stats["interactions"] == sum(len(line.split()) - 1 for line in lines)

    assert main(["run", "--model", "pop", "--dataset", "sports"]) == 0
    rows = pd.read_csv(results_dir() / "metrics.csv")
    rows = rows[(rows["dataset"] == "sports") & (rows["split"] == "test") & (rows["protocol"] == "sampled")]
    # Tail users, counted from the bundled lines: the test item (last) has fewer than 4 buyers.
    buyers = Counter(item for line in lines for item in line.split()[1:])
    tail_users = sum(buyers[line.split()[-1]] < 4 for line in lines)
    assert set(rows.loc[rows["group"] == "overall", "n"]) == {2000}
    assert set(rows.loc[rows["group"] == "tail", "n"]) == {tail_users}
    assert np.isfinite(rows["value"]).all()


@pytest.fixture(scope="module")
def tiny_sports(tmp_path_factory):
    """Five hand-made items, two of them without any text (2 and 4), three users."""
    from protocol.data.prepare import load_dataset

    folder = tmp_path_factory.mktemp("tiny-sports")
    (folder / "items.tsv").write_text(
        "item_id\tasin\ttitle\timage_url\n"
        "1\tA1\tRod &amp; Reel\thttp://example.invalid/1.jpg\n"
        "2\tA2\t\thttp://example.invalid/2.jpg\n"
        "3\tA3\tTent\t\n"
        "4\tA4\t\t\n"
        "5\tA5\tBike\thttp://example.invalid/5.jpg\n")
    (folder / "sequences.txt").write_text("u1 1 2 3\nu2 2 4 5\nu3 1 3 5 4\n")
    return load_dataset("sports", "mini", {"path": str(folder), "n_negatives": 1})


def test_items_without_text_are_counted_in_every_feature_set(tiny_sports):
    from extractors.store import load_or_extract

    assert tiny_sports.items["title"].tolist() == ["Rod & Reel", "", "Tent", "", "Bike"]
    for name, overrides in (("base", {}), ("clip", {}), ("qwenvl", {"pca_dim": 4})):  # PCA needs >= dim items
        features = load_or_extract(tiny_sports, name, "mini", overrides, progress=False)
        assert features.meta["items_without_text"] == 2, name
        assert features.text.shape[0] == 5 and np.isfinite(features.text).all()  # they still get a vector


def test_items_without_a_title_get_a_plain_rendered_image(tiny_sports):
    from PIL import Image

    from protocol.data.render import render_image

    blank = np.asarray(render_image("", ""))
    for index, title in enumerate(tiny_sports.items["title"]):
        with Image.open(tiny_sports.path / tiny_sports.items["image"][index]) as image:
            same = np.array_equal(np.asarray(image.convert("RGB")), blank)
        assert same == (title == ""), title  # background only: no title words, no category


def test_items_without_text_counts_empty_fields_as_no_text():
    from extractors.prompts import items_without_text

    table = pd.DataFrame({"title": ["a", "", " ", "", ""], "brand": ["", "", "", "b", ""],
                          "categories": ["[]", "[]", "", "", '[["Sports"]]']})
    assert items_without_text(table) == 2  # rows 2 and 3: blank title, no brand, no category path
