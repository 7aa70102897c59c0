"""The example plugin package (examples/sda-harness-examples) as a user meets it: installed into the
venv with pip, listed by the harness, run from the CLI and the Python API into the same store and
keys as native models, built into a table beside the paper's rows, and keyed anew when edited."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import api
from harness.cli import main as cli_main
from protocol.errors import HarnessError
from protocol.store import ResultStore

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "examples" / "sda-harness-examples"
PLUGIN = "sda_examples.gru4rec:GRU4Rec"


def harness(*args: str) -> str:
    """`python -m harness ...` in a fresh process (the session's HARNESS_* folders), its stdout."""
    done = subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, capture_output=True, text=True,
                          env=os.environ | {"TQDM_DISABLE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _installed_here() -> bool:
    """Whether the venv holds this checkout's example package (an editable install of PACKAGE)."""
    try:
        dist = importlib.metadata.distribution("sda-harness-examples")
    except importlib.metadata.PackageNotFoundError:
        return False
    direct = dist.read_text("direct_url.json") or ""
    return PACKAGE.resolve().as_uri() in direct and {"gru4rec", "tfidf", "example-shop"} <= {ep.name for ep in dist.entry_points}


@pytest.fixture(scope="module")
def installed():
    """pip install -e examples/sda-harness-examples, as a user would (once: skipped when present).
    --no-deps: it needs nothing beyond the harness; --no-build-isolation where the venv has
    setuptools (Python 3.11's venv does), so no package index is needed."""
    if not _installed_here():
        offline = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *offline, "-e", str(PACKAGE)]
        done = subprocess.run(pip, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        importlib.invalidate_caches()
    assert _installed_here()
    if importlib.util.find_spec("sda_examples") is None:  # this process started before the install
        sys.path.insert(0, str(PACKAGE))
    yield


def test_its_entry_points_are_visible_and_listed_with_their_origin(installed, capsys):
    from extractors.registry import EXTRACTORS
    from recommenders import MODELS

    groups = {g: {ep.name: ep.value for ep in importlib.metadata.entry_points(group=g)}
              for g in ("sda_harness.recommenders", "sda_harness.extractors")}
    assert groups["sda_harness.recommenders"]["gru4rec"] == PLUGIN
    assert groups["sda_harness.extractors"]["tfidf"] == "sda_examples.tfidf:TfidfExtractor"
    assert {ep.name for ep in importlib.metadata.entry_points(group="sda_harness.datasets")} >= {"example-shop"}
    assert MODELS.origins()["gru4rec"] == EXTRACTORS.origins()["tfidf"] == "sda-harness-examples 0.1.0"
    identity = MODELS.identity("gru4rec")
    assert (identity["package"], identity["class"]) == ("sda-harness-examples", PLUGIN)
    with pytest.raises(SystemExit):
        cli_main(["run", "--help"])
    assert "gru4rec(sda-harness-examples0.1.0)" in "".join(capsys.readouterr().out.split())


def test_its_data_set_config_is_listed_and_prepares(installed):
    from protocol.config import config_names, config_origin
    from protocol.data.prepare import load_dataset

    assert "example-shop" in config_names("datasets")
    assert config_origin("datasets", "example-shop").startswith("package sda-harness-examples 0.1.0")
    shop = load_dataset("example-shop")  # its folder ships beside its YAML file, inside the package
    assert (shop.n_users, shop.n_items) == (12, 8)  # cups and honey: nobody bought them


def test_cli_and_api_runs_share_one_key_beside_native_runs(installed, toys):
    from sda_examples.gru4rec import GRU4Rec

    assert cli_main(["run", "--model", "pop", "--dataset", "toys", "train.progress=false"]) == 0
    out = harness("run", "--model", PLUGIN, "--extractor", "base", "--dataset", "toys", "train.max_epochs=1")
    key = out.split(" run ")[1].split()[0]
    listed = harness("results", "--dataset", "toys")
    assert key in listed and "pop" in listed and PLUGIN in listed
    # the API with the class: the same settings give the same key, read back from the store
    result = api.run(model=GRU4Rec, extractor="base", dataset="toys", **{"train.max_epochs": 1})
    assert (result.run_key, result.skipped) == (key, True)
    assert isinstance(result.metrics, pd.DataFrame) and set(result.metrics["split"]) == {"valid", "test"}
    assert result.headline.loc[("test", "overall"), "n"] == toys.n_users
    mine = api.results(run_key=key)
    assert len(mine) == len(result.metrics) and set(mine["model"]) == {PLUGIN}
    assert {"pop", PLUGIN} <= set(api.results(dataset="toys")["model"])
    assert api.per_user(key)["user"].nunique() == toys.n_users
    with pytest.raises(HarnessError, match="results has no column 'modle'. Did you mean 'model'"):
        api.results(modle="pop")
    # a setting given as the CLI's text reads as the CLI reads it
    assert api.run(model=PLUGIN, extractor="base", dataset="toys", **{"train.max_epochs": "1"}).run_key == key


def test_a_class_the_api_cannot_name_is_refused_in_one_line():
    class InMain:
        pass

    InMain.__module__ = "__main__"
    with pytest.raises(HarnessError, match="put it in a .py file") as err:
        api.run(model=InMain, dataset="toys")
    assert "\n" not in str(err.value)


def test_the_example_plan_puts_the_plugins_beside_the_papers_rows(installed, toys):
    out = harness("table", "examples/plan.yaml")
    assert "plan: 24 cells" in out
    cells = pd.read_csv(ResultStore().root / "tables" / "plan.csv")
    assert cells["value"].notna().all() and (cells["run_key"].str.len() > 0).all()
    assert set(cells["model"]) == {"sasrec", "gru4rec"} and set(cells["extractor"]) == {"base", "clip", "tfidf"}
    assert len(cells) == 2 * 3 * 2 * 2  # models x extractors x groups x metrics
    ours = cells[cells["extractor"] == "tfidf"]
    assert ours["ours"].all() and not cells.loc[cells["extractor"] != "tfidf", "ours"].any()
    tested = ours[ours["test_status"] == "tested"]
    assert len(tested) > 0
    for column in ("baseline", "p_ttest", "p_wilcoxon", "p_holm"):
        assert tested[column].notna().all(), column
    p = pd.to_numeric(tested["p_holm"], errors="coerce")  # "< 1e-300" reads as NaN: below any threshold
    expected = (p.fillna(0) < 0.05) & (tested["value"].to_numpy() > cells.set_index(
        ["model", "group", "metric", "extractor"])["value"].reindex(
        list(zip(tested["model"], tested["group"], tested["metric"], tested["baseline"]))).to_numpy())
    assert (tested["marked"].astype(bool).to_numpy() == expected.to_numpy()).all()
    # the paper's values sit beside its own rows, none beside the plugin's
    assert cells.loc[cells["model"] == "sasrec", "paper_value"].notna().sum() == 8
    assert cells.loc[(cells["model"] == "gru4rec") | (cells["extractor"] == "tfidf"), "paper_value"].isna().all()
    markdown = (ResultStore().root / "tables" / "plan.md").read_text()
    assert "| gru4rec | base |" in markdown and "| sasrec | base |" in markdown
    # the plugin's runs record where they came from
    key = cells.loc[(cells["model"] == "gru4rec") & (cells["extractor"] == "tfidf"), "run_key"].iloc[0]
    identity = api.manifest(key)["identity"]
    assert "sda-harness-examples" in identity["model_plugin"] and "sda-harness-examples" in identity["extractor_plugin"]
    assert np.isfinite(cells["value"]).all()


def test_editing_a_copy_of_the_plugin_keys_its_run_anew(installed, toys, tmp_path):
    copy = tmp_path / "gru4rec_copy.py"
    shutil.copy(PACKAGE / "sda_examples" / "gru4rec.py", copy)
    name = f"{copy}:GRU4Rec"
    first = api.run(model=name, extractor="base", dataset="toys", **{"train.max_epochs": 1, "train.progress": False})
    assert not first.skipped and api.manifest(first.run_key)["identity"]["model"] == name
    assert api.run(model=name, extractor="base", dataset="toys", **{"train.max_epochs": 1}).skipped
    copy.write_text(copy.read_text() + "# edited: any change to the source is a new identity\n")
    second = api.run(model=name, extractor="base", dataset="toys", **{"train.max_epochs": 1, "train.progress": False})
    assert not second.skipped and second.run_key != first.run_key  # new source: a new key, run anew
    assert api.manifest(second.run_key)["spec"]["params"] == api.manifest(first.run_key)["spec"]["params"]
    assert ResultStore().is_finished(first.run_key) and ResultStore().is_finished(second.run_key)
    assert "# edited" not in (PACKAGE / "sda_examples" / "gru4rec.py").read_text()  # the package is untouched
