"""Item images: synthetic renders for the bundled mini data sets, and loading with a noise fallback.

Rendered images are SYNTHETIC: the bundled subsets carry no product photos, so each item gets a
64x64 PNG drawn from its category (background colour) and its title (one shape per title word,
placed and coloured by a hash of the word). Items sharing words share shapes, which gives the
image modality a weak, deterministic link to the text, enough to exercise the pipeline.

Loading: a missing, remote (URL) or unreadable image becomes one fixed Gaussian-noise image
(as in the authors' code), and the extractors count these in their feature set's meta.json.
"""
from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

RENDER_SIZE = 64
MAX_SHAPES = 8
NOISE_SIZE = 224
NOISE_SEED = 0


def _hash_bytes(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _colour(b: bytes) -> tuple[int, int, int]:
    return (b[0], b[1], b[2])


def render_image(title: str, category: str, size: int = RENDER_SIZE):
    """A deterministic synthetic image: category colour background, one shape per title word."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), _colour(_hash_bytes("category:" + category)))
    draw = ImageDraw.Draw(image)
    words = re.findall(r"[a-z0-9]+", title.lower())[:MAX_SHAPES]
    for word in words:
        b = _hash_bytes("word:" + word)
        x, y = b[3] % size, b[4] % size
        r = 4 + b[5] % (size // 4)
        box = (x - r, y - r, x + r, y + r)
        kind = b[6] % 3
        if kind == 0:
            draw.ellipse(box, fill=_colour(b[7:]))
        elif kind == 1:
            draw.rectangle(box, fill=_colour(b[7:]))
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=_colour(b[7:]))
    return image


def _category_label(row) -> str:
    from extractors.prompts import first_category_path

    return first_category_path(row.get("categories", ""))


def render_item_images(folder: Path, item_table) -> list[str]:
    """Write images/<index>.png for every item into data set `folder`; return relative paths.

    Called by harness.data.prepare for `images: render` before the folder is renamed into place.
    """
    out = Path(folder) / "images"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for position, row in enumerate(item_table.to_dict("records")):
        name = f"images/{int(row.get('index', position)):06d}.png"
        render_image(str(row.get("title", "")), _category_label(row)).save(Path(folder) / name,
                                                                            optimize=False)
        paths.append(name)
    return paths


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
