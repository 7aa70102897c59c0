"""RecBole's sequential models as harness recommenders: `--model recbole:<Name>` (GRU4Rec, SASRec,
BERT4Rec, LightSANs, FEARec, ...).

RecBole builds the model from the harness's split exported as atomic files
(protocol/data/export.py; its leave-one-out by position gives our split) with its own defaults
(recbole/properties/model/<Name>.yaml and overall.yaml), and the model is constructed on
RecBole's augmented training set as its quick_start does. Training runs in the harness's
trainer: each batch of users' training sequences becomes RecBole's training samples (every
training item is a target once, with up to `max_len` items before it, as RecBole's
augmentation makes them; a negative per target for `loss_type: BPR`), passes through the
model's batch transform (BERT4Rec's masking) and reaches the model's own `calculate_loss`.
Selection on the harness's sampled validation NDCG@10, the harness's evaluator on the fixed
negatives and full ranking, the result store. `batch_size` counts users (RecBole's counts
samples: 2048 samples is about 256 users at Amazon's ~8 training items per user).
"""
from __future__ import annotations

import functools
import sys
from typing import ClassVar

import torch

from protocol.config import SIZE, artifacts_dir
from protocol.errors import HarnessError, did_you_mean
from recommenders.base import Recommender

# harness setting -> RecBole setting
RECBOLE_NAMES = {"lr": "learning_rate", "max_len": "MAX_ITEM_LIST_LENGTH"}


def _properties(name: str) -> dict:
    import recbole
    import yaml

    from recbole.config import Config

    path = recbole.__path__[0] + f"/properties/model/{name}.yaml"
    with open(path, encoding="utf-8") as f:
        return yaml.load(f.read(), Loader=Config._build_yaml_loader(None)) or {}


def _export(dataset) -> str:
    """The data set as RecBole atomic files under artifacts/recbole/ (written once per content)."""
    from protocol.data.export import export_recbole

    root = artifacts_dir() / "recbole" / f"{dataset.name}-{dataset.content_hash[:12]}"
    if not (root / dataset.name / f"{dataset.name}.yaml").exists():  # the YAML is written last
        export_recbole(dataset, root / dataset.name)
    return str(root)


class RecBoleModel(Recommender):
    """Base of the generated `recbole:<Name>` classes; `upstream` is RecBole's model class."""

    input_type = "sequence"
    upstream: ClassVar[type]
    # the harness's names (lr, weight_decay, batch_size take COMMON_RULES); RecBole's own settings
    # are checked for type and finiteness only: RecBole declares no ranges to follow
    rules = {"max_len": SIZE}

    @classmethod
    def source_config(cls) -> dict:
        """RecBole's own training defaults: up to 300 epochs, patience 10."""
        return {"defaults": cls.defaults, "train": {"max_epochs": 300, "patience": 10}, "grid": {}}

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.data.transform import construct_transform

        settings = {RECBOLE_NAMES.get(k, k): v for k, v in self.params.items() if k != "batch_size"}
        bpr = settings.get("loss_type") == "BPR"
        argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config reads `--key=value` from the command line
        try:
            config = Config(model=self.upstream, dataset=dataset.name, config_dict={
                **settings, "data_path": _export(dataset), "use_gpu": torch.cuda.is_available(),
                "show_progress": False, "save_dataset": False, "save_dataloaders": False,
                "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                "eval_args": {"order": "TO", "split": {"LS": "valid_and_test"}, "group_by": "user", "mode": "full"},
                "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1} if bpr else None})
        finally:
            sys.argv = argv
        data = create_dataset(config)
        train, _, _ = data_preparation(config, data)
        self.net = self.upstream(config, train._dataset)
        self.transform = construct_transform(config)
        self.train_set = train._dataset
        tokens = data.field2token_id["item_id"]
        missing = [i for i in range(self.n_items) if str(i) not in tokens]
        if missing:
            raise HarnessError(f"RecBole dropped {len(missing)} items of {dataset.name} (e.g. {missing[0]}); "
                               "check its filtering settings (user_inter_num_interval, item_inter_num_interval).")
        internal = torch.tensor([tokens[str(i)] for i in range(self.n_items)] + [0])  # our pad -> RecBole's 0
        self.register_buffer("internal", internal, persistent=False)
        self.fields = {k: getattr(self.net, k) for k in ("ITEM_SEQ", "ITEM_SEQ_LEN", "POS_ITEM_ID")}
        self.neg_field = config["NEG_PREFIX"] + config["ITEM_ID_FIELD"]

    def train_length(self) -> int:
        return 10**9  # whole training sequences: every training item is a target once

    def _recbole_sequences(self, left_padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, L) left-padded harness histories -> RecBole's (N, max_len) sequences (items first,
        zeros after) in RecBole's ids, and their lengths."""
        max_len = self.params["max_len"]
        seq = left_padded[:, -max_len:]
        real = seq != self.pad
        order = torch.argsort((~real).int(), dim=1, stable=True)  # real items first, in order
        seq = self.internal[seq.gather(1, order)]
        if seq.shape[1] < max_len:
            seq = torch.nn.functional.pad(seq, (0, max_len - seq.shape[1]))
        return seq, real.sum(1)

    def _interaction(self, seq, lengths, extra: dict):
        from recbole.data.interaction import Interaction

        return Interaction({self.fields["ITEM_SEQ"]: seq, self.fields["ITEM_SEQ_LEN"]: lengths, **extra})

    def calculate_loss(self, batch):
        items, neg = batch["items"], batch["neg"]
        max_len = self.params["max_len"]
        real = items != self.pad
        first = real.int().argmax(1, keepdim=True)
        positions = torch.arange(items.shape[1], device=items.device)
        targets = real & (positions > first)  # every training item after a user's first
        # window p holds the max_len items before position p (left padding where there are fewer)
        padded = torch.nn.functional.pad(items, (max_len, 0), value=self.pad)
        windows = padded.unfold(1, max_len, 1)[:, : items.shape[1]]
        seq, lengths = self._recbole_sequences(windows[targets])
        interaction = self._interaction(seq, lengths, {
            self.fields["POS_ITEM_ID"]: self.internal[items[targets]],
            self.neg_field: self.internal[neg[targets]]})
        interaction = self.transform(self.train_set, interaction)
        loss = self.net.calculate_loss(interaction)
        return sum(loss) if isinstance(loss, tuple) else loss

    def full_sort_predict(self, batch):
        seq, lengths = self._recbole_sequences(batch["history"])
        scores = self.net.full_sort_predict(self._interaction(seq, lengths, {}))
        return scores.view(len(seq), -1)[:, self.internal[: self.n_items]]


def model_class(name: str) -> type[RecBoleModel]:
    """The harness class for RecBole's sequential model `name` (registry hook for `recbole:<Name>`)."""
    from recommenders.recbole_compat import require

    require()
    return _model_class(name)


@functools.cache
def _model_class(name: str) -> type[RecBoleModel]:
    import recbole.model.sequential_recommender as sequential

    names = sorted(n for n in dir(sequential) if isinstance(getattr(sequential, n), type))
    if name not in names:
        raise HarnessError(f"RecBole has no sequential model '{name}'.{did_you_mean(name, names, 0.5, 'recbole:')}"
                           f" Its models: {', '.join(names)}.")
    # RecBole's overall.yaml (learning rate, weight decay) and sample.yaml (max length)
    defaults = {"lr": 0.001, "weight_decay": 0.0, "batch_size": 256, "max_len": 50,
                **{k: v for k, v in _properties(name).items() if not isinstance(v, (dict, list))}}
    return type(f"RecBole{name}", (RecBoleModel,), {
        "name": f"recbole:{name}", "upstream": getattr(sequential, name), "defaults": defaults,
        "__doc__": f"RecBole's {name} through the harness adapter.",
    })
