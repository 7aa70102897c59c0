"""Bring-your-own components: plugins named `file.py:Class`, `pkg.mod:Class` or by entry points get
the native guarantees (store, grid, keys that cover their source), and a broken one is refused by
its contract with one line, exit 2, nothing written."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from protocol.errors import HarnessError
from protocol.fileio import read_json, stable_key
from protocol.store import ResultStore
from recommenders import MODELS

GOOD_MODEL = '''
import torch
import torch.nn.functional as F
from torch import nn

from recommenders.base import Recommender


class MyModel(Recommender):
    name = "mymodel"
    defaults = {"dim": 8}
    grid = {"dim": [4, 8]}
    train_defaults = {"max_epochs": 1, "patience": 1}

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        self.users = nn.Embedding(self.n_users, self.params["dim"])
        self.items = nn.Embedding(self.n_items, self.params["dim"])

    def calculate_loss(self, batch):
        u = self.users(batch["users"])
        diff = (u * self.items(batch["pos"])).sum(1) - (u * self.items(batch["neg"])).sum(1)
        return -F.logsigmoid(diff).mean()

    def full_sort_predict(self, batch):
        scores = self.users(batch["users"]) @ self.items.weight.T
        return scores
'''
SCORES = "        return scores\n"

GOOD_EXTRACTOR = '''
import numpy as np

from extractors.base import Extractor
from protocol.featureset import FeatureSet


class MyFeatures(Extractor):
    name = "myfeatures"
    defaults = {"dim": 4}

    def extract(self, dataset, progress=True):
        n, d = dataset.n_items, self.settings()["dim"]
        x = np.arange(n * d, dtype=np.float32).reshape(n, d) / (n * d)
        meta = {"image_dim": d, "text_dim": d}
        return FeatureSet(x, x.copy(), meta)
'''

# Each broken model: (how the good source is changed, words its error must hold)
BROKEN_MODELS = {
    "no calculate_loss": (lambda s: s.replace("def calculate_loss", "def loss"), "no calculate_loss method"),
    "wrong shape": (lambda s: s.replace(SCORES, "        return scores[:, :-1]\n"), "not (batch, n_items)"),
    "not float": (lambda s: s.replace(SCORES, "        return scores.long()\n"), "not a float tensor"),
    "nan": (lambda s: s.replace(SCORES, "        scores[:, 0] = float('nan')\n" + SCORES), "NaN or infinite"),
    "order": (lambda s: s.replace(SCORES, "        return scores + torch.arange(len(scores))[:, None]\n"),
              "order of the batch"),
    "size": (lambda s: s.replace(SCORES, "        return scores - scores.mean(0, keepdim=True)\n"),
             "size of the batch"),
    "predict": (lambda s: s + "\n    def predict(self, batch):\n        return torch.zeros(batch['candidates'].shape)\n",
                "predict disagrees"),
    "not a subclass": (lambda s: s.replace("class MyModel(Recommender)", "class MyModel(nn.Module)"),
                       "not a subclass of recommenders.base.Recommender"),
    "import fails": (lambda s: s + "\nraise ValueError('oops')\n", "failed (ValueError: oops)"),
}
BROKEN_EXTRACTORS = {
    "rows": (lambda s: s.replace("return FeatureSet(x, x.copy(), meta)", "return FeatureSet(x[1:], x[1:], meta)"),
             "image features have shape"),
    "dims": (lambda s: s.replace('"text_dim": d}', '"text_dim": d + 1}'), "but its meta says text_dim"),
    "nan": (lambda s: s.replace("meta = {", "x[3, 1] = np.nan\n        meta = {"), "not all finite"),
    "order": (lambda s: s.replace('"text_dim": d}', '"text_dim": d, "items": list(dataset.items["asin"])[::-1]}'),
              "not the data set's items in order"),
}


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture()
def results(tmp_path, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv("HARNESS_RESULTS", str(root))
    return root


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def finished_runs(root: Path) -> list:
    return sorted((root / "runs").glob("*/manifest.json")) if (root / "runs").exists() else []


def test_a_plugin_model_named_by_file_runs_into_the_store_beside_native_runs(toys, tmp_path, results, capsys):
    model = write(tmp_path, "mymodel.py", GOOD_MODEL)
    assert cli_main(["run", "--model", "pop", "--dataset", "toys", "train.progress=false"]) == 0
    assert cli_main(["run", "--model", f"{model}:MyModel", "--extractor", "base", "--dataset", "toys",
                     "train.max_epochs=1", "train.progress=false"]) == 0
    store = ResultStore(results)
    manifests = [store.manifest(p.parent.name) for p in finished_runs(results)]
    assert sorted(m["identity"]["model"] for m in manifests) == [f"{model}:MyModel", "pop"]
    mine = next(m for m in manifests if m["identity"]["model"] != "pop")
    assert '"source_sha256"' in mine["identity"]["model_plugin"]
    assert "model_plugin" not in next(m for m in manifests if m["identity"]["model"] == "pop")["identity"]
    assert mine["identity"]["epochs"] == 1
    # the contract passed once for this identity: a pass is cached, not checked on every run
    from protocol.config import artifacts_dir

    assert any(read_json(p)["plugin"] == f"{model}:MyModel" for p in (artifacts_dir() / "contracts").glob("*.json"))


def test_a_plugin_model_runs_its_declared_grid(toys, tmp_path, results):
    from harness.grid import run_grid

    model = f"{write(tmp_path, 'gridmodel.py', GOOD_MODEL)}:MyModel"
    out = run_grid(model, "toys", "base", overrides={"train.progress": False}, store=ResultStore(results))
    assert list(out["points"]["dim"]) == [4, 8]  # the class's `grid`
    assert len(finished_runs(results)) == 2
    assert out["row"]["model"] == model


def test_the_run_key_covers_the_plugin_source_and_native_keys_stay(tmp_path):
    from harness.runner import RunSpec

    path = write(tmp_path, "keyed.py", GOOD_MODEL)
    name = f"{path}:MyModel"
    before = RunSpec.resolve(name, "toys", "base", "mini", {})
    key, loaded = before.key("data", "id"), MODELS.get(name)
    assert RunSpec.resolve(name, "toys", "base", "mini", {}).key("data", "id") == key  # stable
    path.write_text(path.read_text().replace("-F.logsigmoid(diff).mean()", "-F.logsigmoid(diff).sum() / len(diff)"))
    after = RunSpec.resolve(name, "toys", "base", "mini", {})
    assert after.params == before.params and after.key("data", "id") != key
    assert MODELS.get(name) is not loaded  # the edited file is loaded again: the new key runs the new code
    # a native model's key is what it always was: no identity added
    pop = RunSpec.resolve("pop", "toys", "base", "mini", {})
    assert pop.key("data", "id") == stable_key({"model": "pop", "params": pop.params, "extractor": "base",
                                                "features": "id", "data": "data", "train": pop.key_train()})


def test_a_plugin_model_named_by_module_and_the_errors_of_names(tmp_path, monkeypatch):
    package = tmp_path / "mypkg"
    package.mkdir()
    write(package, "__init__.py", "")
    write(package, "models.py", GOOD_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = MODELS.get("mypkg.models:MyModel")
    assert cls.source_config() == {"defaults": {}, "train": {"max_epochs": 1, "patience": 1}, "grid": {"dim": [4, 8]}}
    identity = MODELS.identity("mypkg.models:MyModel")
    assert identity["class"] == "mypkg.models:MyModel" and len(identity["source_sha256"]) == 64
    with pytest.raises(HarnessError, match="has no 'MyModle'. Did you mean 'MyModel'"):
        MODELS.check("mypkg.models:MyModle")
    with pytest.raises(HarnessError, match="importing mypkg.nothing failed"):
        MODELS.check("mypkg.nothing:MyModel")
    with pytest.raises(HarnessError, match="unknown model 'sasrek'. Did you mean 'sasrec'"):
        MODELS.check("sasrek")
    with pytest.raises(HarnessError, match="no file"):
        MODELS.check(f"{tmp_path}/absent.py:MyModel")


@pytest.mark.parametrize("case", BROKEN_MODELS)
def test_a_broken_plugin_model_is_refused_in_one_line(case, toys, tmp_path, results, capsys):
    change, words = BROKEN_MODELS[case]
    broken = change(GOOD_MODEL)
    assert broken != GOOD_MODEL
    path = write(tmp_path, f"broken_{case.replace(' ', '_')}.py", broken)
    code = cli_main(["run", "--model", f"{path}:MyModel", "--dataset", "toys", "train.progress=false"])
    err = one_error_line(capsys)
    assert code == 2 and words in err and f"{path}:MyModel" in err, err
    assert not (results / "runs").exists() or not any((results / "runs").iterdir())


@pytest.mark.parametrize("case", BROKEN_EXTRACTORS)
def test_a_broken_plugin_extractor_is_refused_in_one_line(case, toys, tmp_path, capsys):
    from protocol.config import artifacts_dir

    change, words = BROKEN_EXTRACTORS[case]
    broken = change(GOOD_EXTRACTOR)
    assert broken != GOOD_EXTRACTOR
    path = write(tmp_path, f"broken_{case}.py", broken)
    code = cli_main(["extract", "--extractor", f"{path}:MyFeatures", "--dataset", "toys", "--quiet"])
    err = one_error_line(capsys)
    assert code == 2 and words in err and "extractor plugin" in err, err
    assert not list((artifacts_dir() / "features" / "toys" / "myfeatures").glob("*/meta.json"))


def test_a_plugin_extractor_gets_class_defaults_and_its_identity_in_the_key(toys, tmp_path, capsys):
    from extractors.registry import EXTRACTORS
    from extractors.store import cache_key, extractor_settings, load_or_extract, make_extractor

    path = write(tmp_path, "feats.py", GOOD_EXTRACTOR)
    name = f"{path}:MyFeatures"
    assert extractor_settings(name, "mini", {"dim": 3}) == {"dim": 3}
    assert extractor_settings(name, "mini") == {"dim": 4}
    features = load_or_extract(toys, name, "mini", progress=False)
    assert features.meta["plugin"] == EXTRACTORS.identity(name) and features.image.shape == (toys.n_items, 4)
    key = features.key
    path.write_text(path.read_text().replace("meta = {", "meta = {'note': 'edited', "))
    assert cache_key(make_extractor(name, toys, "mini"), toys) != key
    # the project's own extractors are keyed without any identity
    assert EXTRACTORS.identity("base") is None


def test_an_entry_point_plugin_is_listed_with_its_origin(tmp_path, monkeypatch, capsys):
    package = tmp_path / "ep_models"
    package.mkdir()
    write(package, "__init__.py", GOOD_MODEL)
    info = tmp_path / "ep_models-1.2.3.dist-info"
    info.mkdir()
    write(info, "METADATA", "Metadata-Version: 2.1\nName: ep-models\nVersion: 1.2.3\n")
    write(info, "top_level.txt", "ep_models\n")
    write(info, "entry_points.txt", "[sda_harness.recommenders]\nepmodel = ep_models:MyModel\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "epmodel" in MODELS.names()
    assert MODELS.origins()["epmodel"] == "ep-models 1.2.3"
    identity = MODELS.identity("epmodel")
    assert (identity["package"], identity["version"]) == ("ep-models", "1.2.3")
    from harness.runner import model_config

    assert model_config("epmodel")["grid"] == {"dim": [4, 8]}
    with pytest.raises(SystemExit):
        cli_main(["run", "--help"])
    assert "epmodel(ep-models1.2.3)" in "".join(capsys.readouterr().out.split())  # argparse wraps at "-"
