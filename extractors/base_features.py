"""The `base` extractor: all-MiniLM-L6-v2 text and the 4096-d CNN image vectors of the .b file.

Text: sentence-transformers over "title. brand. categories. description" (prompts.plain_text).
Image: records of `image_features_<Cat>.b` (a 10-byte asin, then 4096 little-endian float32),
read in chunks so a multi-gigabyte file never sits in memory; items without a record get the
mean vector of the items that have one.

Without a .b file (the mini profile, whose images are synthetic renders) the image features are
CNN-free pixel projections: each item image (noise image when missing) is resized to 16x16 RGB,
scaled to [-0.5, 0.5] and multiplied by a fixed Gaussian random matrix (seed 0) of shape
768 x `pixel_dim`, scaled by 1/sqrt(768). meta.json says which of the two was used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from extractors import prompts
from extractors.base import Extractor
from extractors.images import ImageReport, load_images
from extractors.weights import resolve_weights
from protocol.config import SIZE
from protocol.errors import HarnessError
from protocol.featureset import FeatureSet

ASIN_BYTES = 10
CNN_DIM = 4096
RECORD = np.dtype([("asin", f"S{ASIN_BYTES}"), ("vector", "<f4", (CNN_DIM,))])
PIXEL_SIDE = 16
PIXEL_SEED = 0


def read_b_file(path, asins: list[str], chunk_records: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, 4096) float32, found (n,) bool) for `asins` from a .b file, streamed."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"image feature file {path} does not exist; download image_features_<Cat>.b "
                           "from the Amazon 2014 site into that place, or set image_features= to its path.")
    size = path.stat().st_size
    if size % RECORD.itemsize:
        raise HarnessError(f"{path} is not an image_features .b file (its size {size} is not a multiple of "
                           f"{RECORD.itemsize} bytes = 10-byte asin + 4096 float32); download it again.")
    where = {asin: i for i, asin in enumerate(asins)}
    vectors = np.zeros((len(asins), CNN_DIM), dtype=np.float32)
    found = np.zeros(len(asins), dtype=bool)
    with open(path, "rb") as f:
        while block := f.read(chunk_records * RECORD.itemsize):
            records = np.frombuffer(block, dtype=RECORD)
            for asin, vector in zip(records["asin"], records["vector"]):
                row = where.get(asin.decode("ascii", "replace").strip())
                if row is not None:
                    vectors[row], found[row] = vector, True
    return vectors, found


def write_b_file(path, asins: list[str], vectors: np.ndarray) -> None:
    """Write records in the .b layout (used by tests and to export features in that format)."""
    records = np.zeros(len(asins), dtype=RECORD)
    records["asin"] = [a.encode("ascii") for a in asins]
    records["vector"] = vectors
    Path(path).write_bytes(records.tobytes())


def pixel_features(dataset, dim: int) -> tuple[np.ndarray, ImageReport]:
    """The CNN-free image features of the module docstring, one row per item."""
    from PIL import Image

    images, report = load_images(dataset, range(dataset.n_items))
    pixels = np.stack([np.asarray(im.resize((PIXEL_SIDE, PIXEL_SIDE), Image.BILINEAR), dtype=np.float32)
                       for im in images]).reshape(dataset.n_items, -1) / 255.0 - 0.5
    rng = np.random.default_rng(PIXEL_SEED)
    projection = rng.standard_normal((pixels.shape[1], dim)).astype(np.float32) / np.sqrt(pixels.shape[1])
    return pixels @ projection, report


class BaseExtractor(Extractor):
    name = "base"
    code_version = 1
    defaults = {
        "text_model": "sentence-transformers/all-MiniLM-L6-v2",
        "image_features": "",  # the .b file; filled from the data set config when it names one
        "pixel_dim": CNN_DIM,  # width of the pixel projection used when there is no .b file
        "batch_size": 64,
        "device": "auto",
        "cpu_threads": 0,  # torch CPU threads while extracting; 0 = torch's default
    }
    rules = Extractor.rules | {"pixel_dim": SIZE}
    run_settings = ("batch_size", "device", "cpu_threads")

    def extract(self, dataset, progress: bool = True) -> FeatureSet:
        prompts.require_item_text(dataset)
        image, image_meta = self._image(dataset)
        text, text_meta = self._text(dataset, progress)
        return FeatureSet(image.astype(np.float32), text, {"text": text_meta, "image": image_meta})

    def _text(self, dataset, progress: bool) -> tuple[np.ndarray, dict]:
        from sentence_transformers import SentenceTransformer

        s = self._settings
        folder = resolve_weights(s["text_model"], "", self.name, "text_model")
        device = None if s["device"] == "auto" else s["device"]
        model = SentenceTransformer(folder, device=device)
        texts = [prompts.plain_text(row) for row in dataset.items.to_dict("records")]
        vectors = model.encode(texts, batch_size=s["batch_size"], show_progress_bar=progress,
                               convert_to_numpy=True).astype(np.float32)
        return vectors, {"source": "sentence-transformers", "model_folder": folder,
                         "fields": list(prompts.PLAIN_TEXT_FIELDS), "example": texts[0]}

    def _image(self, dataset) -> tuple[np.ndarray, dict]:
        s = self._settings
        if s["image_features"]:
            vectors, found = read_b_file(s["image_features"], dataset.items["asin"].astype(str).tolist())
            if not found.any():
                raise HarnessError(f"{s['image_features']} holds no vector for any item of {dataset.name}; "
                                   "use the .b file of the same category as the data set.")
            vectors[~found] = vectors[found].mean(axis=0)
            return vectors, {"source": "cnn .b file", "file": s["image_features"],
                             "items_with_vector": int(found.sum()), "items_given_mean": int((~found).sum())}
        vectors, report = pixel_features(dataset, s["pixel_dim"])
        report.warn(dataset.n_items)
        return vectors, {"source": "pixel projection (no .b file configured)",
                         "method": f"{PIXEL_SIDE}x{PIXEL_SIDE} RGB in [-0.5, 0.5] @ N(0, 1/768) "
                                   f"matrix 768x{s['pixel_dim']}, seed {PIXEL_SEED}",
                         "images": report.as_meta()}
