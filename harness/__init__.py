"""Benchmark harness for multimodal recommendation (SDA paper, arXiv 2512.06883)."""

__version__ = "0.1.0"
