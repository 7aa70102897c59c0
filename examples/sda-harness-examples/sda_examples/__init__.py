"""Example plugins for the SDA harness (docs/extending.md walks through them).

- `sda_examples.gru4rec:GRU4Rec` (entry point `gru4rec`): a GRU over the user's history.
- `sda_examples.tfidf:TfidfExtractor` (entry point `tfidf`): TF-IDF + SVD text features.
- `SHOP_DATASET` (entry point `example-shop`): a tiny data set config and its folder, the format only.

Nothing heavy is imported here, so listing the harness's plugins stays cheap.
"""

SHOP_DATASET = "data/shop.yaml"  # relative to this folder; the harness resolves it
