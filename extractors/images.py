"""Loading item images with a noise fallback (the bundled data sets' synthetic renders are made
when they are prepared: protocol/data/render.py).

A missing, remote (URL) or unreadable image becomes one fixed Gaussian-noise image (as in the
authors' code), and the extractors count these in their feature set's meta.json.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

NOISE_SIZE = 224
NOISE_SEED = 0


@lru_cache(maxsize=1)
def noise_image():
    """The fixed Gaussian-noise image standing in for a missing or unreadable item image."""
    from PIL import Image

    rng = np.random.default_rng(NOISE_SEED)
    pixels = np.clip(rng.normal(127.5, 64.0, size=(NOISE_SIZE, NOISE_SIZE, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), mode="RGB")


@dataclass
class ImageReport:
    """How many item images were loaded, missing (no file, URL) or unreadable (corrupt)."""
    loaded: int = 0
    missing: int = 0
    unreadable: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: "ImageReport") -> None:
        self.loaded += other.loaded
        self.missing += other.missing
        self.unreadable += other.unreadable
        self.examples = (self.examples + other.examples)[:5]

    def counts(self) -> dict:
        return {"loaded": self.loaded, "missing": self.missing, "unreadable": self.unreadable,
                "examples": self.examples}

    @classmethod
    def merged(cls, parts: list[dict]) -> "ImageReport":
        """One report from the `counts()` of several shards."""
        total = cls()
        for part in parts:
            total.add(cls(**part))
        return total

    def as_meta(self) -> dict:
        return self.counts() | {
            "noise_image": f"Gaussian N(127.5, 64^2) {NOISE_SIZE}x{NOISE_SIZE}, seed {NOISE_SEED}"}

    def warn(self, total: int, enabled: bool = True) -> None:
        """Tell the user (stderr) how many item images the noise image replaced."""
        bad = self.missing + self.unreadable
        if bad and enabled:
            # Items without any image value give no example: no "e.g." then.
            examples = f", e.g. {'; '.join(self.examples[:2])}" if self.examples else ""
            print(f"warning: {bad} of {total} item images were missing ({self.missing}) or unreadable "
                  f"({self.unreadable}){examples}; they use the fixed "
                  "noise image (counted in the feature set's meta.json).", file=sys.stderr)


def local_image_path(value: str, root: Path) -> Path | None:
    """The file an item's `image` value names (relative to data set folder `root`), if local."""
    value = str(value or "").strip()
    if not value or "://" in value:
        return None
    path = Path(value) if Path(value).is_absolute() else Path(root) / value
    return path if path.is_file() else None


def load_item_image(value: str, root: Path, report: ImageReport):
    """The RGB image at `value` (relative to data set folder `root`), or the noise image."""
    from PIL import Image, UnidentifiedImageError

    value = str(value or "").strip()
    path = local_image_path(value, root)
    if path is None:
        report.missing += 1
        if value and len(report.examples) < 5:
            report.examples.append(f"{value}: not a local file")
        return noise_image()
    try:
        with Image.open(path) as image:
            loaded = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        report.unreadable += 1
        if len(report.examples) < 5:
            report.examples.append(f"{value}: {err}")
        return noise_image()
    report.loaded += 1
    return loaded


def load_images(dataset, indices) -> tuple[list, ImageReport]:
    """The images of items `indices` of `dataset` (noise for bad ones) and what happened."""
    report = ImageReport()
    files = dataset.image_files
    return [load_item_image(files[i], dataset.path, report) for i in indices], report
