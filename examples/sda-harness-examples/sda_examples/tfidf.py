"""TF-IDF text features: each item's title, brand, categories and description through scikit-learn's
TfidfVectorizer, reduced to `dim` dimensions by TruncatedSVD (seeded, so a rerun gives the same rows).

A harness plugin in one page. What the harness asks of it (extractors/base.py):
- class settings: `name`, `defaults` (every setting that changes the output: the feature cache key
  is derived from them, the data set's content hash and this package's source), `rules`;
- `extract(dataset, progress)` returning a protocol.featureset.FeatureSet: one float32 row per item,
  in data set order, for both modalities (`image`, `text`).

This extractor reads text only. Its image modality is one constant column: no item information,
exactly how the harness hides a modality (`extractor.modalities=text`), so every model keeps its
architecture and the comparison is about the text features.
"""
from __future__ import annotations

import numpy as np

from extractors.base import Extractor
from protocol.config import NON_NEGATIVE, SIZE
from protocol.featureset import FeatureSet

FIELDS = ("title", "brand", "categories", "description")


class TfidfExtractor(Extractor):
    name = "tfidf"
    defaults = {"dim": 64, "max_features": 20000, "min_df": 1, "seed": 0}
    rules = Extractor.rules | {"dim": SIZE, "max_features": SIZE, "min_df": SIZE, "seed": NON_NEGATIVE}

    def extract(self, dataset, progress: bool = True) -> FeatureSet:
        from sklearn.decomposition import TruncatedSVD  # imported when used: listing plugins stays fast
        from sklearn.feature_extraction.text import TfidfVectorizer

        s = self.settings()
        texts = [" ".join(str(row[f]) for f in FIELDS if row.get(f)) for row in dataset.items.to_dict("records")]
        tfidf = TfidfVectorizer(max_features=s["max_features"], min_df=s["min_df"], sublinear_tf=True,
                                stop_words="english").fit_transform(texts)
        dim = min(s["dim"], tfidf.shape[1] - 1)  # TruncatedSVD needs fewer components than terms
        text = TruncatedSVD(dim, random_state=s["seed"]).fit_transform(tfidf).astype(np.float32)
        image = np.ones((dataset.n_items, 1), dtype=np.float32)  # the constant stand-in (module docstring)
        return FeatureSet(image, text, {
            "text": {"source": "tfidf + truncated svd", "fields": list(FIELDS), "terms": int(tfidf.shape[1]),
                     "dim": dim},
            "image": {"source": "constant column (text-only extractor)"},
        })
