"""Recommenders behind one interface (recommenders.base.Recommender), looked up by name."""
from harness.registry import Registry

MODELS = Registry("model", {
    "pop": "recommenders.pop:Pop",
    "sasrec": "recommenders.sasrec:SASRec",
})
