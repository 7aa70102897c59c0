"""Synthetic item images for the bundled mini data sets, drawn when they are prepared.

Rendered images are SYNTHETIC: the bundled subsets carry no product photos, so each item gets a
64x64 PNG drawn from its category (background colour) and its title (one shape per title word,
placed and coloured by a hash of the word). Items sharing words share shapes, which gives the
image modality a weak, deterministic link to the text, enough to exercise the pipeline.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from protocol.data.dataset import first_category_path

RENDER_SIZE = 64
MAX_SHAPES = 8


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
    return first_category_path(row.get("categories", ""))


def render_item_images(folder: Path, item_table) -> list[str]:
    """Write images/<index>.png for every item into data set `folder`; return relative paths.

    Called by protocol.data.prepare for `images: render` before the folder is renamed into place.
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
