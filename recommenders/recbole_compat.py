"""RecBole 1.2.1 with today's packages: the one place that imports it for the harness and
patches what it needs (the `peers` extra; see docs/peers.md for the install line).

Patches, applied once, at runtime (site-packages stay untouched):
- numpy 2 removed the aliases np.float, np.int, np.bool, ... that RecBole still uses;
- pandas 3 copies on write, so RecBole's `feat[field].fillna(..., inplace=True)` fills a copy
  and leaves the NaN: token and float columns are filled the CoW-safe way first;
- importing its sequential models runs `torch.autograd.set_detect_anomaly(True)` (in
  sine.py) for the whole process, which makes every backward pass several times slower
  (anomaly mode records a stack trace per operation): it is switched off again.
torch >= 2.6 loads weights only by default and RecBole's checkpoints hold its config object:
callers that load a RecBole checkpoint pass `weights_only=False` themselves.
"""
from __future__ import annotations

import warnings

import numpy as np

from protocol.errors import HarnessError

INSTALL = ("pip install -e '.[peers]' && pip install --no-deps recbole==1.2.1 "
           "(RecBole pins ray<=2.6.3, which the harness's ray extra cannot share)")
_applied = False


def require() -> None:
    """Import RecBole with the patches applied, or fail with the install line."""
    try:
        import recbole  # noqa: F401
    except ImportError as err:
        raise HarnessError(f"recbole: models need RecBole 1.2.1 ({err}); install it: {INSTALL}.") from None
    apply_shims()


def apply_shims() -> None:
    global _applied
    if _applied:
        return
    import torch
    import recbole.model.sequential_recommender  # noqa: F401 (its sine.py turns anomaly mode on)
    from recbole.data.dataset import Dataset
    from recbole.utils import FeatureType

    torch.autograd.set_detect_anomaly(False)
    for alias, real in {"float": float, "int": int, "bool": bool, "long": int, "float_": np.float64,
                        "unicode_": np.str_, "complex_": np.complex128}.items():
        if alias not in np.__dict__:
            setattr(np, alias, real)  # aliases numpy 2 removed
    fill_nan = Dataset._fill_nan

    def cow_safe_fill_nan(self):
        for name in self.feat_name_list:
            feat = getattr(self, name)
            for field in feat:
                if self.field2type[field] == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(0)
                elif self.field2type[field] == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(feat[field].mean())
        with warnings.catch_warnings():  # its own chained fillna, now a no-op, warns under pandas 3
            warnings.simplefilter("ignore")
            fill_nan(self)

    Dataset._fill_nan = cow_safe_fill_nan
    _applied = True
