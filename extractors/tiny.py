"""Tiny Qwen2.5-VL and CLIP models built offline from configs, for the mini profile and tests.

They have the real architectures (Qwen2_5_VLForConditionalGeneration, CLIPModel), real
byte-level BPE tokenizers (trained here, run by `tokenizers`), the PIL image processors and the
Qwen2-VL chat template, so the extraction code that loads the 7B model runs unchanged on them.
Weights are random but fixed by the seed: the same seed gives byte-identical folders.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from protocol.fileio import atomic_dir

QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                       "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
CLIP_SPECIAL_TOKENS = ["<|startoftext|>", "<|endoftext|>"]

# The chat template shipped with Qwen2-VL / Qwen2.5-VL-Instruct (chat_template.json).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Training text for the tiny tokenizers: the prompt words, Amazon meta keys and common
# product words, so prompts tokenize into a realistic number of sub-word pieces.
_CORPUS_WORDS = """
The beauty toys sports item has the following attributes: product image title brand
categories description price asin key is value You are a helpful assistant system user
assistant Beauty Toys Games Sports Outdoors Skin Care Makeup Hair Nail Fragrance Face Eyes
Lips Body Bath Tools Accessories Cream Lotion Oil Serum Mask Shampoo Conditioner Polish
Lacquer Set Kit Pack Ounce Fluid oz ml Count Piece Pieces Size Color Black White Red Blue
Green Pink Purple Gold Silver Natural Organic Men Women Kids Baby Puzzle Doll Game Card
Board Action Figure Building Blocks Plush Educational Learning Toy Ball Bike Camping Fitness
Running Water Bottle with and for of the a in to on by from new original classic deluxe mini
large small premium professional collection edition series vanilla rose lavender coconut
0 1 2 3 4 5 6 7 8 9 10 12 16 20 24 32 50 100 . , ; : - ( ) & ' " / % $ !
"""


def _corpus() -> list[str]:
    words = _CORPUS_WORDS.split()
    # Word pairs and triples so merges across frequent neighbours exist; fixed order: deterministic.
    lines = [" ".join(words[i:i + 3]) for i in range(len(words))]
    return lines * 4 + [w.lower() for w in words]


def _train_bpe(empty_tokenizer, vocab_size: int, special: list[str], word_suffix: str = ""):
    """(vocab, merges as tuples): byte-level BPE on the fixed corpus, deterministically.

    Words come from `empty_tokenizer`'s own normaliser and pre-tokeniser (so training and use
    split text alike). Merges are chosen by count, ties by the pair itself: the `tokenizers`
    trainer breaks ties in hash order when a word-end suffix is used, so it is not reproducible.
    """
    from collections import Counter

    from tokenizers import pre_tokenizers

    backend = empty_tokenizer.backend_tokenizer
    counts: Counter = Counter()
    for line in _corpus():
        text = backend.normalizer.normalize_str(line) if backend.normalizer else line
        counts.update(word for word, _ in backend.pre_tokenizer.pre_tokenize_str(text))
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = list(special) + alphabet + ([a + word_suffix for a in alphabet] if word_suffix else [])
    words = {w: list(w[:-1]) + [w[-1] + word_suffix] for w in counts}
    merges = []
    while len(tokens) < vocab_size:
        pairs: Counter = Counter()
        for word, symbols in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += counts[word]
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        tokens.append(best[0] + best[1])
        for symbols in words.values():
            i = 0
            while i < len(symbols) - 1:
                if (symbols[i], symbols[i + 1]) == best:
                    symbols[i:i + 2] = [best[0] + best[1]]
                i += 1
    return {t: i for i, t in enumerate(tokens)}, merges


@contextlib.contextmanager
def _seeded(seed: int):
    """Random initialisation fixed by `seed`, leaving the caller's torch RNG state untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def tiny_qwen_config(vocab: dict[str, int], hidden: int = 64, layers: int = 2):
    from transformers import Qwen2_5_VLConfig

    heads = 4
    head_dim = hidden // heads
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=2,
            max_position_embeddings=4096, rope_theta=1_000_000.0,
            # M-RoPE splits the rotary half-dimension into (time, height, width) sections.
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                             "mrope_section": _mrope_sections(head_dim // 2)},
            bos_token_id=vocab["<|endoftext|>"], eos_token_id=vocab["<|im_end|>"],
            pad_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=hidden,
            fullatt_block_indexes=[1]),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"],
    )


def _mrope_sections(half: int) -> list[int]:
    time = half // 4
    height = (half - time) // 2
    return [time, height, half - time - height]


def build_tiny_qwen2_5_vl(out_dir, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """A random tiny Qwen2.5-VL (model, tokenizer, PIL image processor, chat template) in `out_dir`."""
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2TokenizerFast, Qwen2VLImageProcessorPil

    vocab, merges = _train_bpe(Qwen2TokenizerFast(), 800, QWEN_SPECIAL_TOKENS)
    with _seeded(seed):
        model = Qwen2_5_VLForConditionalGeneration(tiny_qwen_config(vocab, hidden, layers)).eval()
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=merges, errors="replace",
                                   additional_special_tokens=QWEN_SPECIAL_TOKENS[1:])
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    images = Qwen2VLImageProcessorPil()
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        images.save_pretrained(tmp)
        (tmp / "chat_template.jinja").write_text(QWEN2_VL_CHAT_TEMPLATE)
    return out_dir


def build_tiny_clip(out_dir, seed: int = 0, hidden: int = 32, projection: int = 32) -> Path:
    """A random tiny CLIPModel (BPE tokenizer with `</w>` word ends, PIL image processor) in `out_dir`."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizerFast

    vocab, merges = _train_bpe(CLIPTokenizerFast(), 1000, CLIP_SPECIAL_TOKENS, word_suffix="</w>")
    special = dict(bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                   pad_token_id=vocab["<|endoftext|>"])
    layer = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                 num_attention_heads=2)
    config = CLIPConfig(text_config=dict(vocab_size=len(vocab), max_position_embeddings=77, **layer, **special),
                        vision_config=dict(image_size=32, patch_size=8, **layer),
                        projection_dim=projection)
    with _seeded(seed):
        model = CLIPModel(config).eval()
    tokenizer = CLIPTokenizerFast(vocab=vocab, merges=merges, model_max_length=77)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        images.save_pretrained(tmp)
    return out_dir


BUILDERS = {"tiny-qwen2.5-vl": build_tiny_qwen2_5_vl, "tiny-clip": build_tiny_clip}


def ensure_tiny_model(name: str, folder: Path) -> Path:
    """`folder`, building tiny model `name` into it first when it holds no model yet.

    Safe when several processes (torchrun ranks) ask at once: each builds privately and the
    first rename wins; a finished folder is never replaced while another process reads it.
    """
    import os
    import shutil
    import tempfile

    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        BUILDERS[name](scratch / "model")
        try:
            os.rename(scratch / "model", folder)
        except OSError:
            if not (folder / "config.json").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder
