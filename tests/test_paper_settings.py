"""The paper profile's resolved settings beside the authors' own (docs/paper-settings.csv).

Each CSV row names a setting, how the harness resolves it (`resolve`), the authors' value with its
source file, the paper's text where known, the value the paper profile must resolve to and,
where it differs from the authors' code or the paper's text, the reason.
The authors' values were read from their repositories (RaoZhongtao/SDA, RaoZhongtao/MMRec), not
from this code. docs/paper-settings.md shows the same table: regenerate it with
`.venv/bin/python tests/test_paper_settings.py` after editing the CSV.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CSV = REPO / "docs" / "paper-settings.csv"
DOC = REPO / "docs" / "paper-settings.md"
DATASETS = ("beauty", "sports", "toys")
BEGIN, END = "<!-- table: rendered from paper-settings.csv -->", "<!-- end of table -->"


def load() -> pd.DataFrame:
    return pd.read_csv(CSV, dtype=str, keep_default_na=False)


def value(text: str):
    """A CSV cell as YAML reads it (numbers, lists, booleans), else the text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def resolve(spec: str, dataset: str):
    """The paper profile's value of one setting, through the harness's own resolution."""
    kind, _, rest = spec.partition(":")
    if kind == "dataset":
        from protocol.data.spec import dataset_spec

        return getattr(dataset_spec(dataset, "paper"), rest.split(":", 1)[1])
    if kind in ("model", "train"):
        from harness.runner import RunSpec

        model, key = rest.split(":")
        spec_ = RunSpec.resolve(model, dataset, "clip", "paper")
        return (spec_.params if kind == "model" else spec_.train)[key]
    if kind == "grid":
        from harness.grid import grid_axes

        model, key = rest.split(":")
        return grid_axes(model, "clip", {}, "paper")[0].get(key, "none")
    if kind == "extractor":
        from extractors.registry import EXTRACTORS
        from extractors.store import extractor_settings

        name, key = rest.split(":")
        return EXTRACTORS.get(name)(**extractor_settings(name, "paper", dataset=dataset)).settings()[key]
    if kind == "const":
        module, attr = rest.split(":")
        return getattr(importlib.import_module(module), attr)
    if kind == "targets":  # the Linears the adapter's regex picks in the real 7B architecture
        from torch import nn

        from extractors.sda.config import LANGUAGE_MODEL_LINEARS
        from harness.costs.architectures import build

        names = [n for n, m in build("qwen2.5-vl-7b-instruct").named_modules()
                 if isinstance(m, nn.Linear) and re.fullmatch(LANGUAGE_MODEL_LINEARS, n)]
        picked = {n.rsplit(".", 1)[1] for n in names} | ({"visual"} if any("visual" in n for n in names) else set())
        return ",".join(sorted(picked))
    raise AssertionError(f"unknown resolve kind in {spec}")


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


ROWS = load()


@pytest.mark.parametrize("row", [r for r in ROWS.to_dict("records") if r["resolve"] != "-"],
                         ids=lambda r: f"{r['area']}/{r['setting']}/{r['dataset']}")
def test_paper_profile_resolves_to_the_documented_value(row):
    datasets = DATASETS if row["dataset"] == "all" else (row["dataset"],)
    for dataset in datasets:
        got = resolve(row["resolve"].replace("{d}", dataset), dataset)
        assert same(got, value(row["harness"])), (
            f"{row['setting']} ({dataset}): the paper profile resolves to {got!r}, the table says "
            f"{row['harness']!r} (authors: {row['authors']!r}); fix configs/profiles/paper.yaml or the table")


def test_every_difference_from_the_authors_is_stated_with_a_reason():
    for row in ROWS.to_dict("records"):
        harness = value(row["harness"])
        differs = not same(harness, value(row["authors"])) or bool(row["paper"] and not same(harness, value(row["paper"])))
        assert differs == bool(row["reason"].strip()), (
            f"{row['setting']} ({row['dataset']}): harness {row['harness']!r} vs authors {row['authors']!r}, "
            f"paper {row['paper']!r}: " + ("differ without a reason" if differs else "agree but the row states a reason"))
        assert row["source"].strip(), f"{row['setting']}: no source for the authors' value"


def render(table: pd.DataFrame) -> str:
    """The Markdown table of docs/paper-settings.md."""
    lines = ["| Area | Setting | Data set | Authors' code | Source | Paper text | Harness (paper profile) "
             "| Difference: reason |", "|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        cells = [r["area"], r["setting"], r["dataset"], f"`{r['authors']}`", r["source"], r["paper"] or "-",
                 f"`{r['harness']}`", r["reason"] or "same"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def test_the_document_shows_the_table_of_the_csv():
    text = DOC.read_text()
    assert f"{BEGIN}\n{render(ROWS)}\n{END}" in text, \
        "docs/paper-settings.md is out of date: run `.venv/bin/python tests/test_paper_settings.py`"


if __name__ == "__main__":
    text = DOC.read_text()
    head, _, tail = text.partition(BEGIN)
    tail = tail.partition(END)[2]
    DOC.write_text(f"{head}{BEGIN}\n{render(load())}\n{END}{tail}")
    print(f"written: {DOC}")
