"""Golden tests of the paper's prompts on Amazon-2014-style meta records (DESIGN: QwenVL)."""
from __future__ import annotations

import pytest

from extractors import prompts


@pytest.fixture(scope="module")
def tiny_qwen_folder():
    from extractors.weights import resolve_weights

    return resolve_weights("tiny:tiny-qwen2.5-vl")

# An Amazon 2014 meta record as the raw file stores it (a Python literal, this key order).
BEAUTY_RECORD = {
    "asin": "B00004TMFE",
    "description": "Line 1 of the description;\nline 2 with; two semicolons",
    "title": "OPI Nail Lacquer, Simmer and Shimmer",
    "imUrl": "http://ecx.images-amazon.com/images/I/41oD6hWQ1gL.jpg",
    "related": {"also_bought": ["B000142FVW"], "bought_together": ["B0002JHI1I"]},
    "salesRank": {"Beauty": 43608},
    "categories": [["Beauty", "Makeup", "Nails", "Nail Polish"], ["Beauty", "Nail Care"]],
    "price": 8.5,
    "brand": "OPI",
}


def test_text_prompt_golden():
    expected = ("The beauty item has the following attributes: \n "
                "asin is B00004TMFE; "
                "description is Line 1 of the description. line 2 with. two semicolons; "
                "title is OPI Nail Lacquer, Simmer and Shimmer; "
                "categories is Beauty, Makeup, Nails, Nail Polish; "
                "price is 8.5; "
                "brand is OPI")
    assert prompts.text_prompt(BEAUTY_RECORD, "beauty") == expected


def test_text_prompt_cuts_values_at_100_characters_and_keeps_key_order():
    record = {"title": "x" * 150, "brand": "a;b\nc", "asin": "B1"}
    text = prompts.text_prompt(record, "toys")
    assert text == ("The toys item has the following attributes: \n "
                    f"title is {'x' * 100}; brand is a.b c; asin is B1")
    # The cut happens on the raw value: a ';' at position 100 is gone, one before it replaced.
    record = {"description": "y" * 99 + ";" + ";" * 10}
    assert prompts.text_prompt(record, "toys").endswith("description is " + "y" * 99 + ".")


def test_text_prompt_skips_related_imurl_salesrank_and_strips_trailing_separator():
    record = {"related": {"a": 1}, "imUrl": "u", "salesRank": {"Toys": 3}}
    assert prompts.text_prompt(record, "toys") == "The toys item has the following attributes: \n "
    assert not prompts.text_prompt({"title": "t"}, "toys").endswith("; ")


def test_categories_use_the_first_path_whatever_the_form():
    assert prompts.first_category_path([["Toys & Games", "Puzzles"], ["Toys & Games"]]) == \
        "Toys & Games, Puzzles"
    assert prompts.first_category_path('[["Beauty", "Skin Care"]]') == "Beauty, Skin Care"
    assert prompts.first_category_path(["Beauty", "Hair"]) == "Beauty, Hair"
    assert prompts.first_category_path([]) == ""


def test_image_prompt_and_messages():
    assert prompts.image_prompt("toys") == "The toys product has the image: "
    image_turn = prompts.image_messages(prompts.image_prompt("toys"))
    assert image_turn == [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "The toys product has the image: "}]}]
    assert prompts.text_messages("p")[0]["content"] == [{"type": "text", "text": "p"}]


def test_chat_template_gives_one_user_turn_with_generation_prompt(tiny_qwen_folder):
    from extractors.qwenvl import chat_text, load_processor

    processor = load_processor(str(tiny_qwen_folder), 400, 65536)
    text = chat_text(processor, prompts.image_messages(prompts.image_prompt("beauty")))
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
                    "The beauty product has the image: <|im_end|>\n<|im_start|>assistant\n")


def test_plain_text_for_minilm_and_clip():
    item = {"title": "Puzzle", "brand": "", "categories": '[["Toys", "Puzzles"]]', "description": "Fun."}
    assert prompts.plain_text(item) == "Puzzle. Toys, Puzzles. Fun."


def test_bundled_toys_prompt_holds_its_meta_fields_and_not_other_data_sets_ids(toys):
    """items.tsv of Toys carries TransRec's item id beside the Amazon fields; the prompt reads
    asin, title and categories only (first item: B001RNFQNK, TransRec id 11020)."""
    first = toys.items["meta"].iloc[0]
    assert list(first) == ["asin", "title", "categories"]
    assert prompts.text_prompt(first, "toys") == (
        "The toys item has the following attributes: \n asin is B001RNFQNK; "
        "title is Hasbro Electronic Catch Phrase; categories is Toys & Games, Games, Handheld Games")
