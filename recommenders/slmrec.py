"""SLMRec as in MMRec (FAC task, image + text): LightGCN-style propagation (mean over layers 0..n)
of an ID view, an image view and a text view over the training graph; features row-normalised,
then projected; views concatenated and fused per side by a Linear; in-batch InfoNCE between
users and their positive items (temp) + ssl_alpha * FAC (fine-and-coarse contrast of the
item's ID view against its image view, then against its text view, at ssl_temp).

Differences from MMRec, on purpose:
- MMRec's `reg` hyper-parameter is read and never used; we drop it (Adam's weight decay, 1e-4 as
  in MMRec's SLMRec config, is the regulariser) and it is not in the grid.
- MMRec scores with embeddings cached during the last training batch, before its optimiser
  step; we propagate again in `on_eval_start`, from the parameters being evaluated.
- MMRec returns sigmoid(scores); we return the scores (same ranking, no saturated ties).
- Computation, same values (tests/test_fast_paths.py checks loss, gradients and scores against
  MMRec's order of work): propagation is linear and the features are frozen, so a feature view
  splits into the users' share, mean_k A^k [U; 0], plus the propagated raw features,
  mean_k A^k [0; X], times the projection. The latter is computed once when the model is built
  (a (users + items) x feature-dim buffer: 430 MB for Baby's 4,096-d images). The graph is
  bipartite, so the users' share is read off the ID view's layers (A^k [U; I] at a user row comes
  from U for even k, from I for odd k): per batch one propagation of width d (MMRec makes three),
  its last layer for the batch's nodes only, and the feature views projected for the batch's
  distinct nodes only, in cache-sized chunks (projection.py). The full graph is symmetric, so
  backward multiplies by it again instead of building its transpose.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from protocol.config import NON_NEGATIVE, POSITIVE, SIZE
from recommenders.base import DotProductRecommender
from recommenders.projection import project_rows


def normalized_adjacency(train_matrix: sp.csr_matrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 of the user-item bipartite graph (MMRec's 'pre' adjacency), users first."""
    n_users, n_items = train_matrix.shape
    r = train_matrix.tocoo()
    adj = sp.coo_matrix((np.ones(2 * r.nnz, dtype=np.float32),
                         (np.concatenate([r.row, r.col + n_users]), np.concatenate([r.col + n_users, r.row]))),
                        shape=(n_users + n_items,) * 2).tocsr()
    d = np.power(np.asarray(adj.sum(1)).ravel() + 1e-8, -0.5).astype(np.float32)
    return (sp.diags(d) @ adj @ sp.diags(d)).tocsr().astype(np.float32)


def torch_csr(matrix: sp.csr_matrix, device=None) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products are all we use
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr).long(), torch.from_numpy(matrix.indices).long(),
                                       torch.from_numpy(matrix.data), matrix.shape, check_invariants=True,
                                       device=device)


class Propagate(torch.autograd.Function):
    """matrix @ x with a given transpose for the backward pass (autograd would build the
    transpose again for every product; the full normalised graph is its own transpose)."""

    @staticmethod
    def forward(ctx, matrix, transpose, x):
        ctx.transpose = transpose
        return matrix @ x

    @staticmethod
    def backward(ctx, grad):
        return None, None, ctx.transpose @ grad


def xavier_linear(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.xavier_uniform_(layer.weight)  # MMRec: xavier weights, PyTorch's default bias
    return layer


def info_nce(a: torch.Tensor, b: torch.Tensor, temp: float) -> torch.Tensor:
    """In-batch InfoNCE: row i of `a` should pick row i of `b`."""
    return F.cross_entropy(a @ b.T / temp, torch.arange(len(a), device=a.device))


class SLMRec(DotProductRecommender):
    name = "slmrec"
    uses_features = True
    defaults = {"embedding_size": 128, "n_layers": 3, "temp": 0.2, "ssl_temp": 0.2, "ssl_alpha": 0.1,
                "weight_decay": 1e-4}
    # temperatures divide the logits; ssl_alpha 0 drops the FAC term
    rules = {"embedding_size": SIZE, "n_layers": SIZE, "temp": POSITIVE, "ssl_temp": POSITIVE,
             "ssl_alpha": NON_NEGATIVE}

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        d = self.params["embedding_size"]
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, d)))
        # Frozen inputs (buffers, left out of checkpoints): the graph, and the row-normalised
        # features (and the bias's all-ones column) propagated over it once.
        self.graph = normalized_adjacency(dataset.train_matrix)  # SciPy: per batch, its rows are sliced
        self.register_buffer("adjacency", torch_csr(self.graph), persistent=False)
        for name, values in (("image", F.normalize(torch.from_numpy(features.image).float(), dim=1)),
                             ("text", F.normalize(torch.from_numpy(features.text).float(), dim=1)),
                             ("ones", torch.ones(self.n_items, 1))):
            self.register_buffer(f"{name}_smooth", self.smooth(torch.cat([values.new_zeros(self.n_users, values.shape[1]),
                                                                          values])), persistent=False)
        self.image_proj = xavier_linear(features.image.shape[1], d)
        self.text_proj = xavier_linear(features.text.shape[1], d)
        self.user_fusion = xavier_linear(3 * d, d)
        self.item_fusion = xavier_linear(3 * d, d)
        # FAC heads: ID and image meet in one space, that space and text in a coarser one.
        self.g_i_iv = xavier_linear(d, d)
        self.g_v_iv = xavier_linear(d, d)
        self.g_iv_iva = xavier_linear(d, d)
        self.g_iva_ivat = xavier_linear(d, d // 2)
        self.g_t_ivat = xavier_linear(d, d // 2)

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """LightGCN's output for node inputs x (users first): the mean of A^k x over k = 0..n_layers."""
        total = x
        for _ in range(self.params["n_layers"]):
            x = Propagate.apply(self.adjacency, self.adjacency, x)
            total = total + x
        return total / (self.params["n_layers"] + 1)

    def views(self, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """[ID ‖ image ‖ text] views after propagation of the given distinct nodes (users, then
        n_users + items), or of all nodes. Each view is LightGCN over [user embeddings; that
        view's items]: the ID view over [U; I], and a feature view is the users' share (LightGCN
        of [U; 0]) plus the precomputed LightGCN of [0; X] times the projection, by linearity.

        The graph is bipartite, so A^k [U; I] at a user row comes from U alone for even k and
        from I alone for odd k (at an item row the reverse): the users' share is read off the ID
        view's layers, and one propagation of width d serves both. For given nodes the last
        layer is taken for their rows only (A[nodes] @ x)."""
        n_layers = self.params["n_layers"]
        full, last = [torch.cat([self.user_embedding, self.item_embedding])], []
        for k in range(n_layers):
            if nodes is not None and k == n_layers - 1:
                rows = self.graph[nodes.cpu().numpy()]
                last = [Propagate.apply(torch_csr(rows, nodes.device), torch_csr(rows.T.tocsr(), nodes.device), full[-1])]
            else:
                full.append(Propagate.apply(self.adjacency, self.adjacency, full[-1]))  # symmetric
        layers = full if nodes is None else [layer[nodes] for layer in full] + last
        is_user = (torch.arange(len(layers[0]), device=layers[0].device) if nodes is None else nodes) < self.n_users
        ids = sum(layers) / (n_layers + 1)
        users_share = torch.where(is_user[:, None], sum(layers[0::2]), sum(layers[1::2])) / (n_layers + 1)
        ones = self.ones_smooth if nodes is None else self.ones_smooth[nodes]

        def feature_view(propagated, proj):  # LightGCN of [U; X Wᵀ + b], by linearity
            return users_share + project_rows(propagated, nodes, proj.weight) + ones * proj.bias

        return torch.cat([ids, feature_view(self.image_smooth, self.image_proj),
                          feature_view(self.text_smooth, self.text_proj)], 1)

    def calculate_loss(self, batch):
        users, pos = batch["users"], batch["pos"]
        nodes, inverse = torch.unique(torch.cat([users, self.n_users + pos]), return_inverse=True)
        # F.embedding: its backward sums repeated rows in a fixed order
        user_views, item_views = F.embedding(inverse, self.views(nodes)).split(len(users))
        u = F.normalize(self.user_fusion(user_views), dim=1)
        i = F.normalize(self.item_fusion(item_views), dim=1)
        main = info_nce(u, i, self.params["temp"])
        ids, image, text = item_views.chunk(3, dim=1)
        fine = self.g_i_iv(ids)
        fac = (info_nce(fine, self.g_v_iv(image), self.params["ssl_temp"])
               + info_nce(self.g_iva_ivat(self.g_iv_iva(fine)), self.g_t_ivat(text), self.params["ssl_temp"]))
        return main + self.params["ssl_alpha"] * fac

    def on_eval_start(self):
        user_views, item_views = self.views().split([self.n_users, self.n_items])
        self.cache["users"] = self.user_fusion(user_views)
        self.cache["items"] = self.item_fusion(item_views)

    def user_vectors(self, batch):
        return self.cache["users"][batch["users"]]
