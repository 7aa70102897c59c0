"""VBPR's and SLMRec's fast paths (batch rows only, chunked row projection, restricted last
propagation) give MMRec's loss, gradients and scores, computed here in MMRec's order of work:
project every item, propagate each view over the dense graph, then index. Tolerance: float32
sums in another order, rtol 1e-5 / atol 1e-6 (1e-4 / 1e-5 on gradients summed over the batch)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from protocol.featureset import FeatureSet
from recommenders import projection
from recommenders.slmrec import SLMRec
from recommenders.vbpr import VBPR

N_USERS, N_ITEMS, IMAGE, TEXT = 40, 30, 24, 8


def tiny():
    rng = np.random.default_rng(0)
    pairs = {(u, i) for u in range(N_USERS) for i in rng.choice(N_ITEMS, 4, replace=False)}
    users, items = map(np.array, zip(*sorted(pairs)))
    data = SimpleNamespace(n_users=N_USERS, n_items=N_ITEMS, content_hash="tiny", train_users=users,
                           train_items=items, train_matrix=sp.csr_matrix(
                               (np.ones(len(users), np.float32), (users, items)), shape=(N_USERS, N_ITEMS)))
    features = FeatureSet(rng.standard_normal((N_ITEMS, IMAGE), dtype=np.float32),
                          rng.standard_normal((N_ITEMS, TEXT), dtype=np.float32), {"dataset_hash": "tiny"})
    batch = {"users": torch.from_numpy(rng.integers(0, N_USERS, 64)), "pos": torch.from_numpy(rng.integers(0, N_ITEMS, 64)),
             "neg": torch.from_numpy(rng.integers(0, N_ITEMS, 64))}
    return data, features, batch


def gradients(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def assert_same(model, ours, reference):
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    expected = gradients(model, reference)
    for name, grad in gradients(model, ours).items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-5, msg=name)


def test_vbpr_matches_mmrec_order_of_work(monkeypatch):
    monkeypatch.setattr(projection, "CHUNK", 5)  # several chunks, the last one short
    data, features, batch = tiny()
    torch.manual_seed(0)
    model = VBPR(data, features, embedding_size=8, reg_weight=0.1)
    raw = torch.from_numpy(np.concatenate([features.text, features.image], 1))

    def reference():  # MMRec's VBPR.forward + calculate_loss
        items = torch.cat([model.item_embedding, model.item_linear(raw)], -1)
        u, p, n = model.user_embedding[batch["users"]], items[batch["pos"]], items[batch["neg"]]
        bpr = -torch.log(1e-10 + torch.sigmoid((u * p).sum(1) - (u * n).sum(1))).mean()
        return bpr + 0.1 * (u.norm() + p.norm() + n.norm()) / len(u), items

    assert_same(model, model.calculate_loss(batch), reference()[0])
    with torch.no_grad():
        model.eval()
        model.on_eval_start()
        users = {"users": torch.arange(N_USERS)}
        torch.testing.assert_close(model.full_sort_predict(users), model.user_embedding @ reference()[1].T,
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_layers", [1, 3])  # 1: the only layer is the batch-rows one
def test_slmrec_matches_mmrec_order_of_work(monkeypatch, n_layers):
    monkeypatch.setattr(projection, "CHUNK", 5)
    data, features, batch = tiny()
    torch.manual_seed(0)
    model = SLMRec(data, features, embedding_size=8, n_layers=n_layers)
    r = data.train_matrix.toarray()
    adj = np.block([[np.zeros((N_USERS, N_USERS)), r], [r.T, np.zeros((N_ITEMS, N_ITEMS))]])
    d = (adj.sum(1) + 1e-8) ** -0.5
    graph = torch.from_numpy((d[:, None] * adj * d[None, :]).astype(np.float32))  # MMRec's 'pre' adjacency
    image, text = (F.normalize(torch.from_numpy(x), dim=1) for x in (features.image, features.text))

    def light(items):  # MMRec's compute_graph
        x = torch.cat([model.user_embedding, items])
        layers = [x]
        for _ in range(n_layers):
            layers.append(graph @ layers[-1])
        return torch.stack(layers, 1).mean(1).split([N_USERS, N_ITEMS])

    def reference():  # MMRec's compute, infonce and fac
        (iu, ii), (vu, vi), (tu, ti) = (light(model.item_embedding), light(model.image_proj(image)),
                                        light(model.text_proj(text)))
        user = model.user_fusion(torch.cat([iu, vu, tu], 1))
        item = model.item_fusion(torch.cat([ii, vi, ti], 1))
        users, pos = batch["users"], batch["pos"]
        logits = F.normalize(user[users], dim=1) @ F.normalize(item[pos], dim=1).T / 0.2
        main = F.cross_entropy(logits, torch.arange(len(users)))
        fine = model.g_i_iv(ii[pos])
        v = F.cross_entropy(fine @ model.g_v_iv(vi[pos]).T / 0.2, torch.arange(len(pos)))
        t = F.cross_entropy(model.g_iva_ivat(model.g_iv_iva(fine)) @ model.g_t_ivat(ti[pos]).T / 0.2,
                            torch.arange(len(pos)))
        return main + 0.1 * (v + t), user @ item.T

    assert_same(model, model.calculate_loss(batch), reference()[0])
    with torch.no_grad():
        model.eval()
        model.on_eval_start()
        torch.testing.assert_close(model.full_sort_predict({"users": torch.arange(N_USERS)}), reference()[1],
                                   rtol=1e-5, atol=1e-5)
