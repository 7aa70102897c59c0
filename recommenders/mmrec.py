"""MMRec's models as harness recommenders: `--model mmrec:<Name>` (e.g. mmrec:FREEDOM).

The upstream model class runs unchanged on the harness's data set, feature set and protocol:
the harness's split and training batches (one negative per pair, sampled as for the native
models), the harness's trainer (Adam, per-epoch selection on sampled validation NDCG@10,
patience), evaluator and result store. Each training batch reaches MMRec's
`calculate_loss` in MMRec's interaction format (a (3, B) tensor: users, positives,
negatives; (2, B) for models that set `use_neg_sampling: False`); `full_sort_predict` gets
`[users]`; candidate scores are gathered from the full scores. MMRec's `pre_epoch_processing`
runs at the start of every epoch.

MMRec's `learning_rate_scheduler` [f, n] is followed: epoch e (from 0) trains at
lr * f ** (e / n), as its LambdaLR stepped after every epoch gives (constant by default; 0.96
per 50 epochs for LATTICE, MGCN, PGL and SMORE). Where the harness protocol differs from
MMRec's own loop: selection on the harness's sampled validation NDCG@10 rather than MMRec's
full-ranking Recall@20.

MMRec is not on PyPI (and is GPL-3.0): it is used from a checkout, never copied. The
checkout is `$HARNESS_MMREC` (the folder holding src/), else ../shared/peers/MMRec next to
this repository. Its known incompatibilities with today's packages are handled from the
outside at import time (see `_upstream_imports`); the files stay as they are.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from protocol.config import REPO_ROOT, artifacts_dir
from protocol.errors import HarnessError, did_you_mean
from recommenders.base import Recommender

ENV = "HARNESS_MMREC"
# MMRec's top-level package names: generic, so they live in sys.path only while importing
UPSTREAM_PACKAGES = ("common", "utils", "models")
# MMRec setting name -> harness setting name (what the harness trainer reads)
RENAMED = {"learning_rate": "lr", "train_batch_size": "batch_size"}
MMREC_NAMES = {harness: mmrec for mmrec, harness in RENAMED.items()}


def checkout() -> Path:
    """MMRec's src/ folder: $HARNESS_MMREC/src, else ../shared/peers/MMRec/src."""
    root = Path(os.environ.get(ENV) or REPO_ROOT.parent / "shared" / "peers" / "MMRec")
    src = root / "src"
    if not (src / "common" / "abstract_recommender.py").is_file():
        raise HarnessError(f"no MMRec checkout at {root} (no src/common/abstract_recommender.py); "
                           f"set {ENV} to a clone of https://github.com/enoche/MMRec.")
    return src


def known_models(src: Path) -> list[str]:
    """Model names as MMRec spells them: one YAML per model under src/configs/model/."""
    return sorted(p.stem for p in (src / "configs" / "model").glob("*.yaml"))


def _check_name(name: str, src: Path) -> None:
    names = known_models(src)
    if name in names:
        return
    raise HarnessError(f"MMRec has no model '{name}'.{did_you_mean(name, names, 0.5, 'mmrec:')}"
                       f" Its models: {', '.join(names)}.")


@contextlib.contextmanager
def _upstream_imports(src: Path):
    """MMRec's src/ on sys.path for the imports, plus fixes for today's packages:
    - models/slmrec.py imports torch_scatter (no wheel for torch 2.13) for commented-out code
      only, and utils.get_sparse_laplacian (MGCN, SMORE) calls its scatter_add on 1-D tensors:
      when the package is missing, a stand-in module with that one function (torch's
      index_add_) serves while the models import and build;
    - BM3, LightGCN, LGMRec, DAMRS and SELFCFED_LGN fill their graph with scipy's private
      `dok_matrix._update` (gone since scipy 1.12): while they are built, it is put back as the
      bulk insert it was;
    - utils/dataset.py imports utils.data_utils (torchvision) and lmdb, used only for raw-image
      training; utils/metrics.py uses np.float (removed in numpy 1.24). The adapter imports
      neither (the harness has its own data and evaluator), so they need no fix here.
    """
    for name in UPSTREAM_PACKAGES:  # another package of the same name would shadow MMRec's
        module = sys.modules.get(name)
        where = [getattr(module, "__file__", None) or "", *getattr(module, "__path__", [])] if module else []
        if module is not None and not any(str(w).startswith(str(src)) for w in where):
            raise HarnessError(f"a module named '{name}' ({where[0] or where[-1]}) is already imported "
                               "and hides MMRec's; run mmrec: models in a fresh process.")
    stand_in = None
    try:
        import torch_scatter  # noqa: F401
    except ImportError:
        stand_in = sys.modules["torch_scatter"] = types.ModuleType("torch_scatter")
        stand_in.scatter_add, stand_in.scatter = _scatter_add, _scatter_add
    patch_dok = not hasattr(sp.dok_matrix, "_update")
    if patch_dok:
        sp.dok_matrix._update = lambda self, data: self._dict.update(data)
    sys.path.insert(0, str(src))
    try:
        yield
    finally:
        sys.path.remove(str(src))
        if stand_in is not None:
            sys.modules.pop("torch_scatter", None)
        if patch_dok:
            del sp.dok_matrix._update


def _scatter_add(src, index, dim=-1, out=None, dim_size=None, **kwargs):
    """torch_scatter.scatter_add for a 1-D index along `dim` (the only use in MMRec)."""
    if index.dim() != 1 or kwargs:
        raise HarnessError("this MMRec code path needs the real torch_scatter (pip install torch_scatter).")
    if out is None:
        size = list(src.shape)
        size[dim] = dim_size if dim_size is not None else int(index.max()) + 1
        out = torch.zeros(size, dtype=src.dtype, device=src.device)
    return out.index_add_(dim, index, src)


def _upstream_class(name: str, src: Path):
    import importlib

    with _upstream_imports(src):
        try:
            module = importlib.import_module(f"models.{name.lower()}")
        except ModuleNotFoundError as err:
            if err.name and err.name.split(".")[0] in (*UPSTREAM_PACKAGES, "models"):
                raise HarnessError(f"mmrec:{name} does not import in this MMRec checkout ({err}); "
                                   "MMRec's own code is broken for this model.") from None
            package = err.name.split(".")[0]
            raise HarnessError(f"mmrec:{name} needs the package '{package}', which is not installed "
                               f"(pip install {package}; see MMRec's requirements.txt).") from None
    return getattr(module, name)


def _yaml(path: Path) -> dict:
    import yaml

    from utils.configurator import Config  # MMRec's own YAML reading (it parses 1e-4 as a float)

    with open(path, encoding="utf-8") as f:
        return yaml.load(f.read(), Loader=Config._build_yaml_loader(None)) or {}


def _harness_name(key: str) -> str:
    return RENAMED.get(key, key)


def _feature_id(features) -> str:
    """Names the folder of MMRec's caches: the feature set's key, or (for an in-memory set
    without one) a hash of its arrays, so a cache never serves other features."""
    if features is None:
        return "id"
    if features.key:
        return features.key[:12]
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(features.image).tobytes())
    digest.update(np.ascontiguousarray(features.text).tobytes())
    return digest.hexdigest()[:12]


class MMRecModel(Recommender):
    """Base of the generated `mmrec:<Name>` classes; `upstream` is MMRec's model class."""

    upstream: ClassVar[type]
    base_config: ClassVar[dict] = {}  # overall.yaml + the model's YAML (hyper-parameter lists kept)
    grid: ClassVar[dict] = {}
    # lr, weight_decay and batch_size take COMMON_RULES; the model's own settings are MMRec's (their
    # types are checked and numbers must be finite, but MMRec declares no ranges to follow).
    rules = {"learning_rate_scheduler": lambda value: None if (
        len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf
                                for v in value)) else "a list [factor, epochs] of two numbers greater than 0"}

    @classmethod
    def source_config(cls) -> dict:
        """What configs/models/<model>.yaml holds for native models: defaults, train, grid."""
        overall = cls.base_config
        train = {"max_epochs": int(overall["epochs"]), "patience": int(overall["stopping_step"])}
        if overall.get("req_training") is False:
            train["max_epochs"] = 0
        return {"defaults": cls.defaults, "train": train, "grid": cls.grid}

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the trainer's "auto"
        with _upstream_imports(checkout()):
            config = self._config(dataset, features, device)
            try:
                self.net = self.upstream(config, TrainingData(dataset))
            except (AssertionError, RuntimeError) as err:
                if "CUDA" not in str(err):
                    raise
                raise HarnessError(f"{self.name} moves tensors to CUDA itself (.cuda() in MMRec's code); "
                                   "run it on a machine with a GPU.") from None
        self.uses_negatives = bool(config["use_neg_sampling"])

    def _config(self, dataset, features, device):
        """MMRec's Config object as its quick_start would build it, without reading the working
        directory: overall.yaml < model YAML < these run's settings."""
        from utils.configurator import Config

        work = artifacts_dir() / "mmrec" / f"{dataset.name}-{dataset.content_hash[:12]}-{_feature_id(features)}"
        work.mkdir(parents=True, exist_ok=True)  # MMRec models cache graphs they build here
        values = dict(self.base_config)
        values |= {MMREC_NAMES.get(key, key): value for key, value in self.params.items()}
        values |= {"model": self.upstream.__name__, "dataset": work.name, "data_path": f"{work.parent}{os.sep}",
                   "use_gpu": device.type == "cuda", "device": device, "end2end": False,
                   "hyper_parameters": []}
        if features is not None:
            values |= {"vision_feature_file": str(self._feature_file(features, work, "image")),
                       "text_feature_file": str(self._feature_file(features, work, "text"))}
        config = Config.__new__(Config)
        config.final_config_dict = values
        return config

    @staticmethod
    def _feature_file(features, work: Path, modality: str) -> Path:
        """The feature set's own file (MMRec reads an absolute path as is), written once into
        the work folder when the feature set lives only in memory."""
        if features.path is not None:
            return Path(features.path).resolve() / f"{modality}_feat.npy"
        path = work / f"{modality}_feat.npy"
        if not path.exists():
            from protocol.fileio import atomic_path

            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, getattr(features, modality))
        return path

    def on_epoch_start(self, epoch):
        self.net.pre_epoch_processing()

    def lr_factor(self, epoch):
        factor, every = self.params["learning_rate_scheduler"]
        return float(factor) ** ((epoch - 1) / float(every))

    def calculate_loss(self, batch):
        rows = [batch["users"], batch["pos"]] + ([batch["neg"]] if self.uses_negatives else [])
        loss = self.net.calculate_loss(torch.stack(rows))
        return sum(loss) if isinstance(loss, tuple) else loss  # MMRec's trainer sums tuple losses

    def full_sort_predict(self, batch):
        return self.net.full_sort_predict([batch["users"]]).view(len(batch["users"]), -1)


class TrainingData:
    """What MMRec models read from the training data loader they are built with: the user and
    item counts and the training interaction matrix (from the harness's training split)."""

    def __init__(self, dataset):
        self._matrix = dataset.train_matrix
        self.dataset = types.SimpleNamespace(get_user_num=lambda: dataset.n_users,
                                             get_item_num=lambda: dataset.n_items)

    def inter_matrix(self, form: str = "coo", value_field=None):
        if value_field is not None:
            raise HarnessError("MMRec asked for a weighted interaction matrix; the harness has none.")
        if form not in ("coo", "csr"):
            raise HarnessError(f"MMRec asked for a '{form}' interaction matrix; like MMRec's own data "
                               "loader, the harness gives coo or csr only.")
        return self._matrix.tocoo() if form == "coo" else self._matrix.tocsr()


def model_class(name: str) -> type[MMRecModel]:
    """The harness class for MMRec's model `name` (registry hook for `mmrec:<Name>`)."""
    return _model_class(checkout(), name)


@functools.cache
def _model_class(src: Path, name: str) -> type[MMRecModel]:
    _check_name(name, src)
    upstream = _upstream_class(name, src)
    with _upstream_imports(src):
        overall = _yaml(src / "configs" / "overall.yaml")
        own = _yaml(src / "configs" / "model" / f"{name}.yaml")
    axes = [k for k in own.get("hyper_parameters") or [] if k != "seed"]
    base = {**overall, **own}
    # MMRec's settings the harness trainer reads, then the model's own; a hyper-parameter list
    # defaults to its first value and is the model's grid axis.
    defaults = {"lr": base["learning_rate"], "weight_decay": float(base["weight_decay"] or 0.0),
                "batch_size": base["train_batch_size"], "learning_rate_scheduler": base["learning_rate_scheduler"]}
    for key, value in own.items():
        if key in ("hyper_parameters", "is_multimodal_model", "use_neg_sampling", "req_training", "epochs"):
            continue
        defaults[_harness_name(key)] = value
    grid = {}
    for key in axes:
        values = base[key] if isinstance(base[key], list) else [base[key]]
        grid[_harness_name(key)] = values
        defaults[_harness_name(key)] = values[0]
    return type(f"MMRec{name}", (MMRecModel,), {
        "name": f"mmrec:{name}", "upstream": upstream, "base_config": base, "grid": grid,
        "defaults": defaults, "uses_features": bool(base.get("is_multimodal_model", True)),
        "__doc__": f"MMRec's {name} ({upstream.__module__}) through the harness adapter.",
    })
