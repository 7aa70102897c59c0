"""results: what is in the result store: finished runs, tables and figures, and which run made a number."""
from __future__ import annotations

from harness.commands import add_common

ORDER = 45


def add_parser(sub) -> None:
    p = sub.add_parser("results", aliases=["ls"], help="list finished runs, tables and figures with their keys",
                       description="List finished runs (run key, model, extractor, data set, test HR@10 and "
                                   "NDCG@10) and the tables and figures under results/; filter runs by "
                                   "model, extractor, data set or a run-key prefix.")
    p.add_argument("--model", "-m", default=None, help="only runs of this model")
    p.add_argument("--extractor", "-e", default=None, help="only runs with this extractor")
    p.add_argument("--dataset", "-d", default=None, help="only runs on this data set")
    p.add_argument("--key", default=None, help="only run keys starting with this")
    add_common(p, dataset=False)
    p.set_defaults(func=main)


def main(args) -> int:
    import pandas as pd

    from protocol.config import results_dir
    from protocol.errors import HarnessError
    from protocol.store import ResultStore

    if args.overrides:  # add_common's key=value slot: `results` has no settings, and a word is no filter
        raise HarnessError(f"results takes no '{args.overrides[0]}'; filter with --model, --extractor, "
                           "--dataset, --key or --profile.")
    store = ResultStore()
    rows, damaged = [], []
    for key in sorted(store.finished_keys()):
        try:
            row = _row(store, key, args)
        except HarnessError as err:  # list the others, then name it
            damaged.append(err)
            continue
        if row is not None:
            rows.append(row)
    print(f"runs under {store.root / 'runs'}: {len(rows)}")
    if rows:
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for kind in ("tables", "figures"):
        files = sorted(p for p in (results_dir() / kind).glob("*") if p.suffix in (".csv", ".md", ".tex", ".png", ".pdf"))
        print(f"\n{kind} under {results_dir() / kind}: {len(files)}")
        for path in files:
            print(f"  {path.name}" + ("  (run_key per cell)" if path.suffix == ".csv" else ""))
    if damaged:
        more = f" ({len(damaged) - 1} more damaged runs are left out too)" if len(damaged) > 1 else ""
        raise HarnessError(f"{damaged[0]}{more}")
    return 0


def _row(store, key: str, args) -> dict | None:
    """The listing row of finished run `key`, or None when the filters leave it out."""
    from protocol.config import profile_name

    ident = store.manifest(key)["identity"]
    if any(want and ident.get(field) != want for field, want in
           (("model", args.model), ("extractor", args.extractor), ("dataset", args.dataset))):
        return None
    if (args.key and not key.startswith(args.key)) or (args.profile and ident.get("profile") != profile_name(args.profile)):
        return None
    metrics = store.metrics(key)
    test = metrics[(metrics["split"] == "test") & (metrics["protocol"] == "sampled")
                   & (metrics["group"] == "overall") & (metrics["k"] == 10)].set_index("metric")["value"]
    return ({k: ident.get(k) for k in ("run_key", "model", "extractor", "dataset", "profile")}
            | {"params": ident.get("params"), "HR@10": test.get("hit"), "NDCG@10": test.get("ndcg")})
