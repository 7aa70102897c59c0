"""compare: paired t-tests between two finished runs."""
from __future__ import annotations

ORDER = 60


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="paired t-test of two runs' per-user test metrics",
                       description="Two-sided paired t-test (scipy.stats.ttest_rel) on per-user "
                                   "metrics of two runs on the same data set and candidates.")
    p.add_argument("run_a", help="run key (see results/metrics.csv)")
    p.add_argument("run_b", help="run key")
    p.add_argument("--split", default="test", choices=("valid", "test"))
    p.add_argument("--protocol", default="sampled", choices=("sampled", "full"))
    p.set_defaults(func=main)


def main(args) -> int:
    import pandas as pd

    from harness.significance import format_p, paired_test
    from protocol.store import ResultStore

    store = ResultStore()
    rows = []
    for group in ("overall", "tail"):
        for metric in ("hit@10", "ndcg@10"):
            t = paired_test(store, args.run_a, args.run_b, metric, args.split, args.protocol, group)
            rows.append({"group": group, "metric": metric, "n": t.n, "a": t.mean_a, "b": t.mean_b,
                         "t": t.t, "p": format_p(t.p), "p<0.05": "*" if t.significant else ""})
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0
