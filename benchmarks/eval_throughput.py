"""Evaluator throughput: 50,000 users x 101 candidates, and full ranking over Beauty 5-core.

    python benchmarks/eval_throughput.py [--repeats 3] [--dataset beauty-5core] [--threads 1]

Random scores (float32); the full-ranking cases mask each user's other interactions, as runs
do. The two paths a run's evaluation takes, side by side (alternating, best of --repeats) on the
same random 128-d user and item vectors, ranking the validation and the test target of every
user: a score matrix per batch of users (`full_sort_predict`, then `full_ranks` per target: the
path of MMRec's and RecBole's models) and `ranks_from_vectors` (the path of the native
dot-product models). Prints users per second; docs/benchmarks.md records the numbers.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from protocol.data.prepare import load_dataset
from protocol.evaluate import Evaluation, full_ranks, ranks_from_vectors, sampled_ranks


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2048, help="users per full-ranking batch")
    parser.add_argument("--dataset", default="beauty-5core")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)

    scores = torch.rand(50_000, 101, generator=gen)
    tail = np.zeros(50_000, dtype=bool)
    seconds = best_of(lambda: Evaluation.from_ranks(sampled_ranks(scores), tail).summary(), args.repeats)
    print(f"sampled: 50,000 users x 101 candidates in {seconds:.3f} s "
          f"({50_000 / seconds:,.0f} users/s)")

    data = load_dataset(args.dataset)
    targets = data.targets["test"]
    mask = data.interaction_matrix

    def full():
        ranks = np.empty(data.n_users, dtype=np.int64)
        for start in range(0, data.n_users, args.batch):
            users = np.arange(start, min(start + args.batch, data.n_users))
            batch_scores = torch.rand(len(users), data.n_items, generator=gen)
            ranks[users] = full_ranks(batch_scores, targets[users], mask[users])
        Evaluation.from_ranks(ranks, data.tail_users("test")).summary()

    seconds = best_of(full, args.repeats)
    print(f"full ranking: {data.n_users:,} users x {data.n_items:,} items in {seconds:.3f} s "
          f"({data.n_users / seconds:,.0f} users/s, score generation included)")

    users = torch.randn(data.n_users, 128, generator=gen)
    items = torch.randn(data.n_items, 128, generator=gen)
    both = [data.targets["valid"], data.targets["test"]]

    def matrix_path():
        for start in range(0, data.n_users, args.batch):
            part = np.arange(start, min(start + args.batch, data.n_users))
            batch_scores = users[part] @ items.T
            for targets in both:
                full_ranks(batch_scores, targets[part], mask[part])

    paths = {"score matrix per batch": matrix_path,
             "ranks_from_vectors": lambda: ranks_from_vectors(users, items, both, (), mask)}
    times = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, fn in paths.items():
            times[name].append(best_of(fn, 1))
    for name, values in times.items():
        print(f"valid + test full ranking from 128-d vectors, {name}: {min(values):.3f} s "
              f"({data.n_users / min(values):,.0f} users/s, the scores included)")


if __name__ == "__main__":
    main()
