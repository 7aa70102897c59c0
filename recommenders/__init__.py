"""Recommenders behind one interface (recommenders.base.Recommender), looked up by name."""
from harness.registry import Registry

MODELS = Registry("model", {
    "pop": "recommenders.pop:Pop",
    "vbpr": "recommenders.vbpr:VBPR",
    "slmrec": "recommenders.slmrec:SLMRec",
    "sasrec": "recommenders.sasrec:SASRec",
    "bert4rec": "recommenders.bert4rec:BERT4Rec",
})
