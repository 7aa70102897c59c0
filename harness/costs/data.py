"""What the cost model knows of a data set: its size and its items' prompt lengths in tokens.

Sizes come from the prepared data set when it exists, else from the paper's Table 2
(../shared/paper/table2.csv). Item texts come from the prepared data set, else from the shipped
5-core set of the same category (../shared/data, through configs/datasets/<name>-5core.yaml):
the paper's raw meta also holds brand, price and description (each cut to 100 characters in the
prompt), so that fallback undercounts text tokens, and the plan says which source it used.

Text tokens are estimated from characters: CHARS_PER_TOKEN for Qwen2's 151k byte-level BPE on
English product text (an assumption, stated in docs/plan.md), plus the chat template's tokens.
Image tokens follow Qwen2.5-VL's own resize rule (transformers' smart_resize) at the profile's
min_pixels / max_pixels, from the data set's image sizes when images were fetched, else at
ASSUMED_IMAGE_SIDE (the 2014 meta's imUrl images are mostly 300-500 px; at max_pixels 65,536
anything from 256 x 256 up gives the same 81 tokens).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from protocol.errors import HarnessError

CHARS_PER_TOKEN = 4.0
# <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n ... <|im_end|>\n
# <|im_start|>assistant\n: 20 tokens around every prompt (special tokens are one token each).
TEMPLATE_TOKENS = 20
VISION_MARKERS = 2  # <|vision_start|> and <|vision_end|> around the image tokens
ASSUMED_IMAGE_SIDE = 300
# Raw 2014 meta fields a 5-core stand-in lacks, at an assumed length in characters (the prompt
# cuts each at 100): descriptions are long, so they count at the cut.
STAND_IN_FIELDS = {"description": 100, "categories": 50, "brand": 12, "price": 5}
IMAGE_SAMPLE = 500  # image headers read to learn a fetched data set's image sizes
CLIP_MAX_TOKENS, MINILM_MAX_TOKENS = 77, 256


@dataclass
class DataStats:
    name: str
    users: int
    items: int
    interactions: int
    prepared: Path | None  # the prepared data set's folder, when it exists
    metas: list  # item meta records (for prompts) of `text_source`
    text_source: str
    image_sizes: np.ndarray  # (n, 2) heights and widths of a sample of item images
    image_source: str

    @property
    def train_interactions(self) -> int:
        return self.interactions - 2 * self.users  # leave-one-out: one valid and one test item per user


def _paper_sizes(name: str) -> tuple[int, int, int] | None:
    from harness.tables.build import PAPER_DIR

    path = PAPER_DIR / "table2.csv"
    if not path.exists():
        return None
    rows = pd.read_csv(path).set_index("dataset")
    return tuple(int(rows.loc[name, c]) for c in ("users", "items", "interactions")) if name in rows.index else None


def _sequences_source(folder: Path) -> tuple[tuple[int, int, int], list, list[str]]:
    """(users, items, interactions), item metas as build.py stores them, and their columns, of a
    folder of sequences.txt + items.tsv (before any recipe)."""
    from protocol.data.sequences import read_sequences_source

    users, histories, items = read_sequences_source(folder)
    columns = [c for c in items.columns if c not in ("raw_id", "meta", "image")]
    metas = [{c: v for c, v in zip(columns, row) if v not in ("", None) and not (isinstance(v, list) and not v)}
             for row in items[columns].itertuples(index=False)]
    return (len(users), len(items), sum(map(len, histories))), metas, columns


def _fallback_metas(name: str) -> tuple[list, str]:
    """Item metas of the shipped 5-core set of the same category, the raw meta's other fields at
    their assumed lengths."""
    from protocol.data.spec import dataset_spec

    try:
        spec = dataset_spec(f"{name}-5core")
    except HarnessError:
        return [], "none (no prepared data set and no 5-core set of this name)"
    folder = spec.resolve(spec.path)
    if not (folder / "items.tsv").exists():
        return [], f"none ({folder} is missing)"
    _, metas, columns = _sequences_source(folder)
    missing = {k: "x" * n for k, n in STAND_IN_FIELDS.items() if k not in columns}
    metas = [m | missing for m in metas]
    return metas, f"{folder.name} items + assumed {', '.join(missing) or 'no'} lengths (5-core stand-in)"


def _image_sizes(dataset) -> np.ndarray:
    from PIL import Image

    from protocol.data.images import local_images

    sizes = []
    for rel in list(local_images(dataset.path).values())[:IMAGE_SAMPLE]:
        try:
            with Image.open(dataset.path / rel) as image:
                sizes.append((image.height, image.width))
        except (OSError, ValueError):
            continue
    return np.array(sizes, dtype=float).reshape(-1, 2)


def prepared_folder(name: str) -> Path | None:
    """The folder of a data set a plan names by its prepared directory (it has no config)."""
    path = Path(name)
    return path if (path / "meta.json").exists() else None


def data_stats(name: str, profile: str | None) -> DataStats:
    from protocol.data.dataset import Dataset
    from protocol.data.prepare import dataset_dir
    from protocol.data.spec import dataset_spec

    folder = prepared_folder(name)
    spec = None if folder else dataset_spec(name, profile)
    folder = folder or dataset_dir(spec)
    assumed = np.array([[ASSUMED_IMAGE_SIDE, ASSUMED_IMAGE_SIDE]], dtype=float)
    if (folder / "meta.json").exists():
        dataset = Dataset(folder)
        stats = dataset.meta["stats"]
        sizes = _image_sizes(dataset)
        return DataStats(name, dataset.n_users, dataset.n_items, int(stats["interactions"]), folder,
                         list(dataset.items["meta"]), f"{name} (prepared)",
                         sizes if len(sizes) else assumed,
                         f"{len(sizes)} fetched images" if len(sizes) else f"assumed {ASSUMED_IMAGE_SIDE} px")
    if spec.source == "sequences" and (spec.resolve(spec.path) / "items.tsv").exists():
        # a folder source (the mini and 5-core sets): its own items, sizes before any recipe
        source = spec.resolve(spec.path)
        sizes, metas, _ = _sequences_source(source)
        return DataStats(name, *sizes, None, metas, f"{source.name} items", assumed, f"assumed {ASSUMED_IMAGE_SIDE} px")
    sizes = _paper_sizes(name)
    if sizes is None:
        raise HarnessError(f"data set '{name}' is not prepared and the paper's Table 2 has no row for it; "
                           f"run `python -m harness data prepare --dataset {name}` first.")
    metas, source = _fallback_metas(name)
    return DataStats(name, *sizes, None, metas, source, assumed, f"assumed {ASSUMED_IMAGE_SIDE} px")


def text_tokens(texts: list[str]) -> np.ndarray:
    return np.array([np.ceil(len(t) / CHARS_PER_TOKEN) for t in texts], dtype=float)


def qwen_text_lengths(stats: DataStats, domain: str, prefix: str) -> np.ndarray:
    """Tokens of each item's text prompt in its chat turn (extractors/prompts.py's prompt)."""
    from extractors.prompts import text_prompt

    if not stats.metas:
        return np.array([TEMPLATE_TOKENS + 40.0])  # no item text at hand: a title-sized prompt
    return TEMPLATE_TOKENS + text_tokens([text_prompt(m, domain, prefix) for m in stats.metas])


def image_grid(stats: DataStats, min_pixels: int, max_pixels: int, patch: int = 14, merge: int = 2) -> np.ndarray:
    """Patches of each sampled image after Qwen2.5-VL's resize (tokens = patches / merge²)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    factor = patch * merge
    return np.array([np.prod(smart_resize(int(h), int(w), factor, min_pixels, max_pixels)) / patch ** 2
                     for h, w in stats.image_sizes])


def qwen_image_lengths(stats: DataStats, domain: str, template: str, patches: np.ndarray, merge: int = 2) -> np.ndarray:
    """Tokens of the image prompt: template, image tokens, the prompt text."""
    from extractors.prompts import image_prompt

    words = text_tokens([image_prompt(domain, template)])[0]
    return TEMPLATE_TOKENS + VISION_MARKERS + words + patches / merge ** 2


def plain_text_lengths(stats: DataStats, cap: int) -> np.ndarray:
    """Tokens of base/CLIP's plain item text (title. brand. categories. description), capped."""
    from extractors.prompts import plain_text

    texts = [plain_text(m) for m in stats.metas] or ["x" * 160]
    return np.minimum(text_tokens(texts) + 2, cap)  # + the start and end tokens
