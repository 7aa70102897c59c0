"""Recommenders behind one interface (recommenders.base.Recommender), looked up by name.

`mmrec:<Name>` and `recbole:<Name>` name models of MMRec and RecBole run through adapters
(recommenders/mmrec.py, recommenders/recbole_models.py). A model of one's own is named
`pkg.module:Class` or `path/file.py:Class`, or registered by an installed package under the entry
point group `sda_harness.recommenders` (protocol/registry.py).
"""
from protocol.registry import Registry

MODELS = Registry("model", {
    "pop": "recommenders.pop:Pop",
    "vbpr": "recommenders.vbpr:VBPR",
    "slmrec": "recommenders.slmrec:SLMRec",
    "sasrec": "recommenders.sasrec:SASRec",
    "bert4rec": "recommenders.bert4rec:BERT4Rec",
}, prefixes={
    "mmrec": "recommenders.mmrec:model_class",
    "recbole": "recommenders.recbole_models:model_class",
}, group="sda_harness.recommenders", base="recommenders.base:Recommender")
