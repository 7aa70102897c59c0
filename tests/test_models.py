"""Recommenders on the bundled mini Beauty data: learning, scoring paths, masking, RAT, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from protocol.errors import HarnessError
from protocol.featureset import FeatureSet
from recommenders import MODELS
from recommenders.sampling import eval_batches
from recommenders.trainer import TrainConfig, Trainer

TINY = {  # small enough for a CPU test, large enough to learn in a few epochs
    "vbpr": {"embedding_size": 32, "lr": 0.01, "batch_size": 512},
    "slmrec": {"embedding_size": 32},
    "sasrec": {"hidden": 32, "max_len": 20},
    "bert4rec": {"hidden": 32, "max_len": 20},
}


def random_features(dataset, seed: int = 0, image_dim: int = 24, text_dim: int = 16) -> FeatureSet:
    rng = np.random.default_rng(seed)
    return FeatureSet(rng.standard_normal((dataset.n_items, image_dim), dtype=np.float32),
                      rng.standard_normal((dataset.n_items, text_dim), dtype=np.float32),
                      {"dataset_hash": dataset.content_hash, "key": "test"})


def build(name, dataset, features=None, **params):
    torch.manual_seed(0)
    return MODELS.get(name)(dataset, features, **(TINY[name] | params))


def features_for(name, dataset):
    return random_features(dataset) if MODELS.get(name).uses_features else None


@pytest.mark.parametrize("name", list(TINY))
def test_validation_hit_rate_improves_over_first_epoch(name, mini_beauty):
    model = build(name, mini_beauty, features_for(name, mini_beauty))
    config = TrainConfig(max_epochs=4, patience=10, valid_metric="hit@10", progress=False, full_ranking=False)
    history = Trainer(model, mini_beauty, config).fit().history
    first, later = history[0]["valid_hit@10"], [h["valid_hit@10"] for h in history[1:]]
    assert max(later) > first + 0.01, history


@pytest.mark.parametrize("name", list(TINY))
def test_candidate_scores_agree_with_full_catalogue(name, mini_beauty):
    model = build(name, mini_beauty, features_for(name, mini_beauty)).eval()
    max_len = model.params.get("max_len")
    batch = next(eval_batches(mini_beauty, "test", 64, max_len, with_candidates=True))
    with torch.no_grad():
        model.on_eval_start()
        sampled = model.predict(batch)
        full = model.full_sort_predict(batch)
    assert full.shape == (64, mini_beauty.n_items)
    torch.testing.assert_close(sampled, full.gather(1, batch["candidates"]), rtol=1e-4, atol=1e-5)


def test_scoring_recomputes_after_training(mini_beauty):
    """Scores come from the parameters being evaluated, not a cache from before the last step."""
    model = build("slmrec", mini_beauty, random_features(mini_beauty)).eval()
    batch = next(eval_batches(mini_beauty, "valid", 8, None, with_candidates=True))
    with torch.no_grad():
        model.on_eval_start()
        before = model.predict(batch)
        model.user_embedding.add_(1.0)
        model.on_eval_start()
        after = model.predict(batch)
    assert not torch.allclose(before, after)
    model.train()
    with pytest.raises(KeyError):
        model.predict(batch)  # training cleared the cache: no silent stale scores


@pytest.mark.parametrize("prob", [0.2, 0.6])
def test_bert4rec_masking_follows_probability(prob, mini_beauty):
    model = build("bert4rec", mini_beauty, mask_prob=prob)
    items = torch.randint(0, mini_beauty.n_items, (400, 50))
    items[:, :10] = model.pad  # left padding is never chosen
    inputs, chosen, masked = model.cloze(items)
    assert not chosen[:, :10].any()
    assert abs(chosen[:, 10:].float().mean().item() - prob) < 0.01
    n = chosen.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.02
    changed = chosen & ~masked & (inputs != items)  # random replacements (a few hit the same item)
    assert abs(changed.sum().item() / n - 0.1) < 0.02
    assert torch.equal(inputs[~chosen], items[~chosen])


def test_rat_trains_adapter_and_leaves_feature_table_untouched(mini_beauty, monkeypatch):
    features = random_features(mini_beauty)
    model = build("sasrec", mini_beauty, features, alpha=0.1, teacher_epochs=1)
    table = model.item_encoder.features.clone()
    adapter = model.item_encoder.down.weight.detach().clone()
    assert "item_encoder.features" not in model.state_dict()  # a frozen buffer, not a parameter
    assert all(p is not model.item_encoder.features for p in model.parameters())
    Trainer(model, mini_beauty, TrainConfig(max_epochs=1, progress=False, full_ranking=False)).fit()
    assert torch.equal(model.item_encoder.features, table)
    assert torch.equal(table[:-1], torch.from_numpy(features.sequential_table()))
    assert not torch.equal(model.item_encoder.down.weight, adapter)
    assert model.alignment.teacher.shape == (mini_beauty.n_items, TINY["sasrec"]["hidden"])

    def no_training(self):
        raise AssertionError("the cached teacher was trained again")

    monkeypatch.setattr(Trainer, "fit", no_training)  # same data and settings: loaded from artifacts/
    again = build("bert4rec", mini_beauty, features, alpha=0.05, teacher_epochs=1)
    torch.testing.assert_close(again.alignment.teacher, model.alignment.teacher)


def test_rat_adapter_equals_two_linear_layers(mini_beauty):
    from recommenders.rat import RATAdapter

    adapter = RATAdapter(random_features(mini_beauty).sequential_table(), 16)
    ids = torch.tensor([[3, 5, 3], [mini_beauty.n_items, 0, 5]])
    reference = adapter.up(adapter.down(adapter.features[ids]))
    torch.testing.assert_close(adapter(ids), reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(adapter()[ids], reference, rtol=1e-4, atol=1e-5)


def test_sasrec_causal_switch_changes_what_a_position_sees(mini_beauty):
    items = torch.tensor([[1, 2, 3, 4]])
    states = {}
    for causal in (True, False):
        model = build("sasrec", mini_beauty, causal=causal, dropout=0.0).eval()
        with torch.no_grad():
            vectors = model.item_encoder(items)
            changed = vectors.clone()
            changed[0, -1] += 1.0  # alter the last item only
            states[causal] = (model.encode(vectors, items == model.pad)[0, 0],
                              model.encode(changed, items == model.pad)[0, 0])
    assert torch.equal(*states[True])  # causal: the first position cannot see the last item
    assert not torch.equal(*states[False])


# -- bad input: one clear HarnessError before any training ------------------------------------
def test_feature_set_for_another_dataset_is_refused(mini_beauty):
    features = random_features(mini_beauty)
    features.meta["dataset_hash"] = "0" * 64
    with pytest.raises(HarnessError, match="extract features for this data set again"):
        build("vbpr", mini_beauty, features)


def test_feature_rows_must_match_items(mini_beauty):
    features = random_features(mini_beauty)
    features.image = features.image[:-1]
    with pytest.raises(HarnessError, match="items"):
        build("sasrec", mini_beauty, features)


def test_nan_features_are_refused(mini_beauty):
    features = random_features(mini_beauty)
    features.text[3, 2] = np.nan
    with pytest.raises(HarnessError, match="NaN"):
        build("slmrec", mini_beauty, features)


def test_missing_feature_file_is_refused(tmp_path, mini_beauty):
    random_features(mini_beauty).save(tmp_path / "feats")
    (tmp_path / "feats" / "text_feat.npy").unlink()
    with pytest.raises(HarnessError, match="text_feat.npy"):
        FeatureSet.load(tmp_path / "feats", mini_beauty)


def test_feature_model_without_features_is_refused(mini_beauty):
    with pytest.raises(HarnessError, match="needs item features"):
        build("vbpr", mini_beauty)


def test_unknown_model_suggests_the_close_name():
    with pytest.raises(HarnessError, match="Did you mean 'bert4rec'"):
        MODELS.get("bert4recc")


def test_unknown_setting_is_refused(mini_beauty):
    with pytest.raises(HarnessError, match="Did you mean 'reg_weight'"):
        build("vbpr", mini_beauty, random_features(mini_beauty), reg_weigth=0.1)


def test_slmrec_views_equal_propagating_each_projected_view(mini_beauty):
    """The precomputed feature propagation is the same LightGCN as MMRec's three propagations."""
    model = build("slmrec", mini_beauty, random_features(mini_beauty)).eval()
    image = torch.nn.functional.normalize(torch.from_numpy(random_features(mini_beauty).image), dim=1)
    text = torch.nn.functional.normalize(torch.from_numpy(random_features(mini_beauty).text), dim=1)
    with torch.no_grad():
        direct = [model.smooth(torch.cat([model.user_embedding, view]))
                  for view in (model.item_embedding, model.image_proj(image), model.text_proj(text))]
        torch.testing.assert_close(model.views(), torch.cat(direct, 1), rtol=1e-4, atol=1e-5)
        nodes = torch.tensor([0, 5, 5, mini_beauty.n_users + 7])
        torch.testing.assert_close(model.views(nodes), model.views()[nodes], rtol=1e-4, atol=1e-5)
