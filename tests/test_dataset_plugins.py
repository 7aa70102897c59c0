"""Bringing a data set: the folder contract of docs/data.md, and data set configs shipped by an
installed package (entry point group sda_harness.datasets): listed and loaded beside
configs/datasets/, relative paths resolved against the YAML file's folder, and every broken or
colliding registration refused with one line.

The package is "installed" as a user's pip would leave it: a folder on sys.path holding the
module and a `*.dist-info` with METADATA and entry_points.txt."""
from __future__ import annotations

import json
import sys

import pytest

from harness.cli import main as cli_main
from protocol.config import config_names, config_origin, load_group
from protocol.data.prepare import load_dataset, prepare
from protocol.data.spec import dataset_spec
from protocol.errors import HarnessError
from test_data_amazon2023 import meta_lines, review_lines, write_lines

SHOP_YAML = """\
# a data set shipped inside the package: its sequences folder sits beside this file
domain: shop
source: sequences
path: data
recipe: none
n_negatives: 1
"""


def install(site, entry_points: dict[str, str], module: str = "", name: str = "shop_data") -> None:
    """Write package `name` (module text `module`) and its dist-info registering `entry_points`."""
    package = site / name
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(module)
    info = site / f"{name}-1.2.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    lines = [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("[sda_harness.datasets]\n" + "\n".join(lines) + "\n")


@pytest.fixture()
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in ("shop_data", "other_data"):  # each test installs its own version of the package
        sys.modules.pop(name, None)


@pytest.fixture()
def shop(site):
    """shop_data ships data set 'shop': a YAML file and a 3-user sequences folder beside it."""
    install(site, {"shop": "shop_data:CONFIG"},
            "from pathlib import Path\nCONFIG = Path(__file__).parent / 'shop.yaml'\n")
    (site / "shop_data" / "shop.yaml").write_text(SHOP_YAML)
    data = site / "shop_data" / "data"
    data.mkdir()
    (data / "sequences.txt").write_text("a 1 2 3\nb 2 3 4\nc 3 4 1\n")
    (data / "items.tsv").write_text("item_id\ttitle\n1\tone\n2\ttwo\n3\tthree\n4\tfour\n")
    return site


def test_a_plugin_config_is_listed_and_loaded_beside_the_repository_ones(shop):
    names = config_names("datasets")
    assert "shop" in names and "beauty" in names and "toys-5core" in names
    assert load_group("datasets", "shop")["domain"] == "shop"
    assert config_origin("datasets", "shop") == (
        "package shop_data 1.2 (entry point sda_harness.datasets: shop = shop_data:CONFIG)")
    assert config_origin("datasets", "beauty") == "configs/datasets/beauty.yaml"


def test_its_relative_sequences_path_is_relative_to_the_yaml_file(shop):
    spec = dataset_spec("shop")
    assert spec.path == str(shop / "shop_data" / "data")
    ds = load_dataset("shop")  # what `run --dataset shop` does
    assert (ds.name, ds.n_users, ds.n_items, ds.meta["stats"]["interactions"]) == ("shop", 3, 4, 9)
    assert ds.meta["domain"] == "shop"
    assert ds.items["raw_id"].astype(str).tolist() == ["1", "2", "3", "4"]
    assert ds.targets["test"].tolist() == [2, 3, 0]  # items 3, 4, 1


def test_data_prepare_takes_the_plugin_name(shop, tmp_path, capsys):
    assert cli_main(["data", "prepare", "--dataset", "shop", "--out", str(tmp_path / "out")]) == 0
    assert "prepared shop: 3 users, 4 items" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["name"] == "shop"


def test_an_unknown_name_suggests_plugin_names_too(shop):
    with pytest.raises(HarnessError, match=r"unknown dataset 'shopp'\. Did you mean 'shop'\?.*shop"):
        load_group("datasets", "shopp")


def test_a_plugin_amazon2023_config_reads_raw_files_under_harness_raw(site, tmp_path, monkeypatch):
    """Raw downloads are not shipped in a package: relative reviews/meta stay under HARNESS_RAW."""
    raw = tmp_path / "raw" / "beauty-2023"
    raw.mkdir(parents=True)
    write_lines(raw / "All_Beauty.jsonl.gz", review_lines())
    write_lines(raw / "meta_All_Beauty.jsonl.gz", meta_lines())
    monkeypatch.setenv("HARNESS_RAW", str(tmp_path / "raw"))
    install(site, {"beauty23": "shop_data:CONFIG"}, "CONFIG = 'beauty23.yaml'\n")  # relative to the module
    (site / "shop_data" / "beauty23.yaml").write_text(
        "domain: beauty\nprofiles:\n  mini:\n    source: amazon2023\n    reviews: beauty-2023/All_Beauty.jsonl.gz\n"
        "    meta: beauty-2023/meta_All_Beauty.jsonl.gz\n    recipe: llmemb\n    min_count: 2\n"
        "    n_negatives: 2\n")
    ds = load_dataset("beauty23")
    assert (ds.n_users, ds.n_items) == (5, 5)  # test_data_amazon2023's hand-computed data set
    assert sorted(ds.meta["sources"]) == ["All_Beauty.jsonl.gz", "meta_All_Beauty.jsonl.gz"]
    with pytest.raises(HarnessError, match="no source for profile 'paper'.*add it to .*beauty23.yaml"):
        dataset_spec("beauty23", "paper")


def refused(*fragments):
    with pytest.raises(HarnessError) as info:
        dataset_spec(fragments[0])
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments[1:]:
        assert fragment in message, message


def test_a_name_colliding_with_a_built_in_config_is_refused(shop):
    install(shop, {"shop": "shop_data:CONFIG", "beauty": "shop_data:CONFIG"},
            "from pathlib import Path\nCONFIG = Path(__file__).parent / 'shop.yaml'\n")
    refused("beauty", "dataset 'beauty' is defined twice: by configs/datasets/beauty.yaml and by package "
            "shop_data 1.2", "rename the entry point")
    assert dataset_spec("shop").domain == "shop"  # the package's other data set still works


def test_two_packages_registering_one_name_are_refused(shop):
    install(shop, {"shop": "other_data:CONFIG"}, "CONFIG = '/x.yaml'\n", name="other_data")
    refused("shop", "is defined twice", "shop_data 1.2", "other_data 1.2")


@pytest.mark.parametrize("value,module,fragment", [
    ("no_such_module:CONFIG", "", "cannot be loaded (ModuleNotFoundError"),
    ("shop_data:MISSING", "", "cannot be loaded (AttributeError"),
    ("shop_data:CONFIG", "raise RuntimeError('boom')\n", "cannot be loaded (RuntimeError: boom)"),
    ("shop_data:CONFIG", "CONFIG = 3\n", "is a int, not the path of a YAML file"),
    ("shop_data:CONFIG", "CONFIG = 'nowhere.yaml'\n", "nowhere.yaml, which is not a file"),
])
def test_a_broken_registration_is_one_line_naming_the_package(site, value, module, fragment):
    install(site, {"broken": value}, module)
    refused("broken", "package shop_data 1.2 (entry point sda_harness.datasets: broken = ", fragment)


def test_a_plugin_config_that_is_not_a_mapping_is_refused(site):
    install(site, {"listy": "shop_data:CONFIG"}, "CONFIG = 'listy.yaml'\n")
    (site / "shop_data" / "listy.yaml").write_text("- a\n- b\n")
    refused("listy", "listy.yaml holds a list, not a mapping of settings")


# ---- the folder contract (docs/data.md, "Bring your own data set") ---------------------------

def test_a_folder_data_set_reads_every_documented_column_and_finds_its_images(tmp_path, capsys):
    from extractors.images import local_image_path
    from protocol.data.spec import folder_spec

    folder = tmp_path / "shop"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "b.png").write_bytes(b"png")
    # a byte-order mark, CRLF endings, blank lines: none of them is data
    (folder / "sequences.txt").write_bytes(b"\xef\xbb\xbfu1 a b c\r\n\r\nu2 b c d\n   \nu3 c d a\n")
    rows = ["item_id\tasin\ttitle\tbrand\tcategories\tprice\tdescription\timage_url\tcolor\tshop_id",
            "a\tA1\tFish &amp; Chips\tAcme\tFood > Fried | Gifts\t3.5\tcrispy\thttps://x.invalid/a.jpg\tgold\t77",
            "b\tB1\tBowl\t\t\t\t\timg/b.png\t\t78",
            "b\tB1\tBowl\t\t\t\t\timg/b.png\t\t78",  # an identical repeat: read once
            "c\tC1\tCup\t\t\t\t\t/abs/c.png\t\t79",
            "d\tD1\tDish",  # fewer fields than the header: the rest are empty
            "e\tE1\tnever bought"]
    (folder / "items.tsv").write_text("\n\n".join(rows) + "\n")
    ds = prepare(folder_spec(str(folder), overrides={"n_negatives": 1}), out_dir=tmp_path / "out")
    assert "1 rows repeat an earlier row" in capsys.readouterr().out
    items = ds.items.set_index("raw_id")
    assert items.index.tolist() == ["a", "b", "c", "d"]  # items.tsv order, unbought items left out
    assert (ds.n_users, ds.meta["stats"]["interactions"]) == (3, 9)
    a = items.loc["a"]
    assert (a["asin"], a["title"], a["brand"], float(a["price"]), a["description"]) == (
        "A1", "Fish & Chips", "Acme", 3.5, "crispy")
    assert json.loads(a["categories"]) == [["Food", "Fried"], ["Gifts"]]
    # other columns are item text in the meta record; *_id columns and the image are not
    assert a["meta"]["color"] == "gold" and "shop_id" not in a["meta"] and "image" not in a["meta"]
    images = items["image"].fillna("").tolist()
    assert images == ["https://x.invalid/a.jpg", str(folder.resolve() / "img" / "b.png"), "/abs/c.png", ""]
    # what the extractors load: a relative path of items.tsv is found from the prepared directory
    assert local_image_path(images[1], ds.path) == folder.resolve() / "img" / "b.png"
    assert local_image_path(images[0], ds.path) is None  # a URL: `data images` fetches it
