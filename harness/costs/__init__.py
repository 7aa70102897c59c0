"""The cost model behind `python -m harness plan`: parameter counts of the real architectures
(built on torch's meta device from configs/architectures/*.json), tokens per item from the data,
FLOPs and memory per job, and GPU-hours at a stated utilisation. docs/plan.md states the formulas.
"""
