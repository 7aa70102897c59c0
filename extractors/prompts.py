"""The paper's prompts, built exactly as DESIGN describes, and the plain item text of base/CLIP.

Text prompt: "The <domain> item has the following attributes: \\n " then "key is value; " per
meta field in stored order (related, imUrl and salesRank skipped; categories = the first path
joined with ", "; each value cut to 100 characters; newlines to spaces; ";" to "."), with the
trailing "; " removed. Image prompt: the image, then "The <domain> product has the image: ".
"""
from __future__ import annotations

from protocol.data.dataset import first_category_path  # the items' categories column (contract 1)
from protocol.errors import HarnessError

TEXT_PREFIX = "The {domain} item has the following attributes: \n "
IMAGE_PROMPT = "The {domain} product has the image: "
FIELD = "{key} is {value}; "
SKIPPED_KEYS = ("related", "imUrl", "salesRank")
MAX_VALUE_CHARS = 100
# The fields of the all-MiniLM / CLIP item text, in this order (DESIGN: base features).
PLAIN_TEXT_FIELDS = ("title", "brand", "categories", "description")


def prompt_settings() -> dict:
    """The paper's prompt templates: extractor settings, so a changed prompt is a new cache key."""
    return {"text_prefix": TEXT_PREFIX, "image_prompt": IMAGE_PROMPT}


def prompt_rules() -> dict:
    """The fixed rules of the text prompt, recorded in a feature set's meta.json."""
    return {"field": FIELD, "skipped_keys": list(SKIPPED_KEYS), "max_value_chars": MAX_VALUE_CHARS}


def _clean(value) -> str:
    # Replacements keep the length, so cutting before or after them gives the same text.
    text = str(value)[:MAX_VALUE_CHARS]
    return text.replace("\r", " ").replace("\n", " ").replace(";", ".")


def text_prompt(meta: dict, domain: str, prefix: str = TEXT_PREFIX) -> str:
    """The item's text prompt from its raw meta record (stored key order)."""
    fields = []
    for key, value in meta.items():
        if key in SKIPPED_KEYS:
            continue
        if key == "categories":
            value = first_category_path(value)
        fields.append(FIELD.format(key=key, value=_clean(value)))
    text = prefix.format(domain=domain) + "".join(fields)
    return text[:-2] if text.endswith("; ") else text


def image_prompt(domain: str, template: str = IMAGE_PROMPT) -> str:
    return template.format(domain=domain)


def text_messages(prompt: str) -> list[dict]:
    """One user turn holding the text prompt (chat-template input)."""
    return [{"role": "user", "content": [{"type": "text", "text": prompt}]}]


def image_messages(prompt: str) -> list[dict]:
    """One user turn: the image first, then the image prompt."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def plain_text(item) -> str:
    """Title, brand, categories (first path) and description joined by ". ", empty ones left out."""
    parts = []
    for key in PLAIN_TEXT_FIELDS:
        value = item.get(key, "")
        value = first_category_path(value) if key == "categories" else str(value or "")
        if value.strip():
            parts.append(value.strip())
    return ". ".join(parts)


def items_without_text(items) -> int:
    """How many items of an item table have an empty plain text (no title, brand, categories or
    description). They still get features: the extractors encode their empty or asin-only text."""
    return sum(not plain_text(row) for row in items.to_dict("records"))


def require_item_text(dataset) -> None:
    """Refuse a data set whose items have no title, brand, categories or description at all."""
    if items_without_text(dataset.items) == dataset.n_items:
        raise HarnessError(f"data set {dataset.name} has no text fields ({', '.join(PLAIN_TEXT_FIELDS)}) "
                           "for any item; prepare it from a source whose item table has them.")
