"""SDA: structural and disentangled adaptation of Qwen2.5-VL for recommendation features.

config.py, layer.py and model.py hold MoDA as a peft LoRA variant; loss.py CMSA and InfoNCE;
train.py the adaptation run; store.py the trained adapters by content key; extractor.py the
`sda`, `sda-lora` and `sda-infonce` extractors; gradients.py and params.py the paper's analyses.
"""
