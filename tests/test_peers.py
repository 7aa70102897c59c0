"""Peer model sources: MMRec's models (`mmrec:<Name>`) and RecBole's (`recbole:<Name>`) run under the
harness's protocol on the bundled mini data, land in the result store and compare with native runs."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from harness.cli import main as cli_main
from harness.runner import RunSpec, execute
from protocol.errors import HarnessError
from protocol.store import ResultStore
from recommenders import MODELS
from test_models import random_features

RANDOM_HR10 = 10 / 101  # a random scorer's sampled HR@10
FAST = {"train.progress": False, "train.full_ranking": False}


def valid_hr10(out) -> float:
    m = out["metrics"].query("split == 'valid' and protocol == 'sampled' and group == 'overall' "
                             "and metric == 'hit' and k == 10")
    return float(m["value"].item())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ResultStore(tmp_path_factory.mktemp("peers"))


@pytest.fixture(scope="module")
def toys_features(toys):
    return random_features(toys)


# -- MMRec -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, epochs, params", [
    ("mmrec:VBPR", 2, {"lr": 0.01}),
    ("mmrec:LightGCN", 2, {"lr": 0.01}),
    ("mmrec:FREEDOM", 2, {"lr": 0.01}),
    ("mmrec:SLMRec", 1, {"lr": 0.01, "recdim": 16, "batch_size": 1024}),
])
def test_mmrec_models_train_and_land_in_the_store(name, epochs, params, toys, toys_features, store):
    multimodal = MODELS.get(name).uses_features  # MMRec's is_multimodal_model: False for LightGCN
    assert multimodal == (name != "mmrec:LightGCN")
    spec = RunSpec.resolve(name, "toys", "base", "mini", {**FAST, "train.max_epochs": epochs, **params})
    out = execute(spec, store=store, dataset=toys, features=toys_features if multimodal else None)
    ident = out["manifest"]["identity"]
    assert ident["model"] == name and ident["epochs"] == epochs
    assert ident["feature_key"] == (toys_features.key if multimodal else "id")
    assert len(out["metrics"]) == 2 * 1 * 2 * 2 * 3  # valid/test x sampled x groups x metrics x Ks
    users = store.per_user(out["run_key"]).query("split == 'test'")["user"].tolist()
    assert users == list(range(toys.n_users))
    assert valid_hr10(out) > RANDOM_HR10 + 0.04, out["manifest"]["history"]  # it learned


def test_mmrec_vbpr_reads_the_feature_set_and_scores_as_upstream_defines(toys, toys_features):
    torch.manual_seed(0)
    model = MODELS.get("mmrec:VBPR")(toys, toys_features, embedding_size=8).eval()
    net = model.net
    # MMRec's VBPR concatenates (text, image): our feature set's arrays, in item order
    expected = np.concatenate([toys_features.text, toys_features.image], axis=1)
    np.testing.assert_array_equal(net.item_raw_features.numpy(), expected)
    assert (net.n_users, net.n_items) == (toys.n_users, toys.n_items)
    users = torch.tensor([0, 5, 1999])
    with torch.no_grad():
        items = torch.cat([net.i_embedding, torch.from_numpy(expected) @ net.item_linear.weight.T
                           + net.item_linear.bias], 1)
        by_hand = net.u_embedding[users] @ items.T
        scores = model.full_sort_predict({"users": users})
        candidates = torch.from_numpy(toys.candidates("test")[users.numpy()])
        picked = model.predict({"users": users, "candidates": candidates})
    torch.testing.assert_close(scores, by_hand, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(picked, by_hand.gather(1, candidates), rtol=1e-4, atol=1e-5)


def test_mmrec_graph_models_see_the_training_split_only(toys):
    from recommenders.mmrec import TrainingData

    matrix = TrainingData(toys).inter_matrix(form="csr")
    assert matrix.shape == (toys.n_users, toys.n_items)
    assert matrix.nnz == len(toys.train_users)
    held_out = matrix[np.arange(toys.n_users), toys.targets["test"]]
    assert held_out.sum() == 0  # no test target leaks into the graph MMRec builds


def test_mmrec_settings_and_grid_come_from_its_yaml():
    from harness.grid import grid_axes
    from protocol.config import load_profile

    # src/configs/model/VBPR.yaml: reg_weight: [2.0, 1.0, 1e-01, 1e-02, 1e-03, 1e-04, 1e-05]
    axes, _ = grid_axes("mmrec:VBPR", "base", {})
    assert axes == {"reg_weight": [2.0, 1.0, 0.1, 0.01, 0.001, 0.0001, 1e-05]}
    spec = RunSpec.resolve("mmrec:VBPR", "toys", "base", "mini", {})
    assert spec.params == {"lr": 0.001, "weight_decay": 0.0, "batch_size": 2048, "embedding_size": 64,
                           "reg_weight": 2.0, "learning_rate_scheduler": [1.0, 50]}
    # the mini profile caps MMRec's 1000 epochs like any model
    assert spec.train["max_epochs"] == load_profile("mini")["train"]["max_epochs"] < 1000
    # SLMRec's YAML grids learning_rate: the harness's lr axis
    assert grid_axes("mmrec:SLMRec", "base", {})[0]["lr"] == [0.0001, 0.001, 0.01, 0.1]


def test_mmrec_learning_rate_schedule_is_followed_epoch_by_epoch(toys, toys_features, monkeypatch):
    """MMRec's LambdaLR, stepped after each epoch: epoch e (from 0) trains at lr * f ** (e / n).
    With [0.5, 2] and lr 0.08: 0.08, 0.08 * 2 ** -0.5, 0.04."""
    seen = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    spec = RunSpec.resolve("mmrec:VBPR", "toys", "base", "mini",
                           {**FAST, "train.max_epochs": 3, "lr": 0.08, "batch_size": 8192,
                            "learning_rate_scheduler": [0.5, 2]})
    execute(spec, store=None, dataset=toys, features=toys_features)
    per_epoch = -(-len(toys.train_items) // 8192)
    expected = [0.08] * per_epoch + [0.08 / 2 ** 0.5] * per_epoch + [0.04] * per_epoch
    assert seen == pytest.approx(expected, rel=1e-12)


def test_mmrec_and_native_vbpr_compare_on_the_same_users_and_candidates(toys, toys_features, store, capsys,
                                                                           monkeypatch):
    runs = {}
    for name in ("vbpr", "mmrec:VBPR"):
        spec = RunSpec.resolve(name, "toys", "base", "mini",
                               {**FAST, "train.max_epochs": 1, "embedding_size": 16, "lr": 0.01})
        runs[name] = execute(spec, store=store, dataset=toys, features=toys_features)["run_key"]
    idents = [store.manifest(key)["identity"] for key in runs.values()]
    assert idents[0]["data_hash"] == idents[1]["data_hash"] == toys.content_hash  # the same negatives
    assert idents[0]["feature_key"] == idents[1]["feature_key"]
    monkeypatch.setenv("HARNESS_RESULTS", str(store.root))
    assert cli_main(["compare", runs["vbpr"], runs["mmrec:VBPR"]]) == 0
    table = capsys.readouterr().out
    assert f" {toys.n_users} " in table  # every user paired


def test_unknown_mmrec_model_suggests_the_spelling():
    with pytest.raises(HarnessError, match="Did you mean 'mmrec:VBPR'"):
        MODELS.check("mmrec:vbpr")
    with pytest.raises(HarnessError, match="MMRec has no model 'FREEDON'. Did you mean 'mmrec:FREEDOM'"):
        MODELS.get("mmrec:FREEDON")
    with pytest.raises(HarnessError, match="Did you mean 'mmrec:'"):
        MODELS.check("mmrc:VBPR")


def test_missing_mmrec_checkout_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_MMREC", str(tmp_path / "nowhere"))
    with pytest.raises(HarnessError, match="no MMRec checkout at .*nowhere.* set HARNESS_MMREC"):
        MODELS.check("mmrec:BPR")
    assert cli_main(["run", "--model", "mmrec:BPR", "--dataset", "toys"]) == 2


def test_mmrec_model_with_a_missing_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_geometric", None)  # as if not installed
    with pytest.raises(HarnessError, match="mmrec:MMGCN needs the package 'torch_geometric'"):
        MODELS.get("mmrec:MMGCN")


# -- RecBole ---------------------------------------------------------------------------------
SMALL_GRU = {"max_len": 20, "embedding_size": 32, "hidden_size": 32}


def test_recbole_gru4rec_trains_on_the_harness_split_and_lands_in_the_store(mini_beauty, store):
    spec = RunSpec.resolve("recbole:GRU4Rec", "beauty", "base", "mini",
                           {"train.progress": False, "train.max_epochs": 1, **SMALL_GRU})
    out = execute(spec, store=store, dataset=mini_beauty)
    ident = out["manifest"]["identity"]
    assert ident["model"] == "recbole:GRU4Rec" and ident["feature_key"] == "id"
    assert len(out["metrics"]) == 48  # valid/test x sampled/full x groups x metrics x Ks
    assert valid_hr10(out) > RANDOM_HR10 + 0.04, out["manifest"]["history"]


def test_recbole_samples_are_every_training_prefix_in_recbole_ids(mini_beauty, monkeypatch):
    """A user's training items a, b, c give RecBole's augmented samples [a] -> b and [a, b] -> c,
    in RecBole's item ids, items first and zeros after, as its own data pipeline builds them."""
    torch.manual_seed(0)
    model = MODELS.get("recbole:GRU4Rec")(mini_beauty, None, **{**SMALL_GRU, "max_len": 4})
    seen = {}
    monkeypatch.setattr(model.net, "calculate_loss", lambda inter: seen.setdefault("i", inter) and torch.zeros(()))
    a, b, c, d, pad = 5, 17, 3, 40, mini_beauty.n_items
    items = torch.tensor([[pad, pad, a, b, c], [a, b, c, d, a]])  # two users, left-padded
    model.calculate_loss({"users": torch.tensor([0, 1]), "items": items, "neg": torch.full_like(items, 7)})
    tokens = model.train_set.field2token_id["item_id"]  # RecBole's own id map of the exported tokens
    rb = {i: tokens[str(i)] for i in (a, b, c, d, 7)}
    inter = seen["i"]
    expected_seqs = [[rb[a], 0, 0, 0], [rb[a], rb[b], 0, 0],  # first user
                     [rb[a], 0, 0, 0], [rb[a], rb[b], 0, 0], [rb[a], rb[b], rb[c], 0],
                     [rb[a], rb[b], rb[c], rb[d]]]  # second user: the last window holds max_len = 4 items
    assert inter["item_id_list"].tolist() == expected_seqs
    assert inter["item_length"].tolist() == [1, 2, 1, 2, 3, 4]
    assert inter["item_id"].tolist() == [rb[b], rb[c], rb[b], rb[c], rb[d], rb[a]]
    assert inter["neg_item_id"].tolist() == [rb[7]] * 6


def test_recbole_scores_come_back_in_the_harness_item_order(mini_beauty):
    torch.manual_seed(0)
    model = MODELS.get("recbole:GRU4Rec")(mini_beauty, None, **SMALL_GRU).eval()
    history = torch.tensor([[mini_beauty.n_items, 5, 17]])
    with torch.no_grad():
        ours = model.full_sort_predict({"users": torch.tensor([0]), "history": history})
        from recbole.data.interaction import Interaction

        tokens = model.train_set.field2token_id["item_id"]
        seq = torch.zeros(1, 20, dtype=torch.long)
        seq[0, :2] = torch.tensor([tokens["5"], tokens["17"]])
        theirs = model.net.full_sort_predict(Interaction({"item_id_list": seq, "item_length": torch.tensor([2])}))
    assert ours.shape == (1, mini_beauty.n_items)
    for item in (0, 5, 17, mini_beauty.n_items - 1):
        assert ours[0, item].item() == pytest.approx(theirs[0, tokens[str(item)]].item(), rel=1e-6)


def test_recbole_errors_name_the_fix(monkeypatch):
    with pytest.raises(HarnessError, match="Did you mean 'recbole:SASRec'"):
        MODELS.check("recbole:SasRec")
    monkeypatch.setitem(sys.modules, "recbole", None)  # as if not installed
    with pytest.raises(HarnessError, match=r"pip install -e '\.\[peers\]'"):
        MODELS.check("recbole:GRU4Rec")


def test_torch_scatter_stand_in_adds_into_buckets():
    """What MMRec's graph builder asks of torch_scatter.scatter_add: per-node sums of edge weights."""
    from recommenders.mmrec import _scatter_add

    out = _scatter_add(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 2, 0, 1]), dim=0, dim_size=4)
    assert out.tolist() == [4.0, 4.0, 2.0, 0.0]


def test_mmrec_caches_are_per_feature_set(toys):
    """MMRec caches graphs built from features (FREEDOM's mm_adj) in its data folder by file name
    only: each feature set gets its own folder, an unsaved one named by its content."""
    from recommenders.mmrec import _feature_id

    def unsaved(seed):
        features = random_features(toys, seed=seed)
        features.meta.pop("key")
        return features

    assert _feature_id(unsaved(1)) == _feature_id(unsaved(1)) != _feature_id(unsaved(2))
    assert _feature_id(random_features(toys)) == "test" and _feature_id(None) == "id"
