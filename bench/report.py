"""Time `flask faces report`'s impostor-pair computation (facelogin/engine/report.py) on synthetic galleries.

Baseline: a naive double loop over every pair of users (np.linalg.norm per pair), in the same
process. At 10k users and above the loop runs over the first rows only and is extrapolated
(the table says so). Templates are random 128-d vectors of norm about 1, like face encodings.
"""

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from bench.common import header, table  # noqa: E402
from facelogin.engine import report  # noqa: E402


def gallery(users, per_user, seed=0):
    """Return (labels, templates) of `users` synthetic people with `per_user` templates each."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 1 / np.sqrt(128), (users * per_user, 128)).astype(np.float32)
    return np.repeat(np.arange(users), per_user), m


def naive(labels, matrix, rows):
    """Return the seconds a double loop takes over the first `rows` users, and the pairs it saw."""
    users = {}
    for label, t in zip(labels, matrix):
        users.setdefault(int(label), []).append(t)
    ids = list(users)
    start, pairs = time.perf_counter(), 0
    for i in ids[:rows]:
        for j in ids[i + 1 :]:
            min(float(np.linalg.norm(a - b)) for a in users[i] for b in users[j])
            pairs += 1
    return time.perf_counter() - start, pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,5000,10000", help="gallery sizes (users)")
    parser.add_argument("--naive-rows", type=int, default=300, help="users the naive loop runs at 10k and up")
    args = parser.parse_args()
    header("Gallery report: impostor pairs of every two users")
    rows = []
    for per_user in (1, 3):
        for users in map(int, args.sizes.split(",")):
            labels, m = gallery(users, per_user)
            start = time.perf_counter()
            stats = report.impostor_pairs(labels, m, 0.45, 0.08)
            ours = time.perf_counter() - start
            n_rows = users if users < 10_000 else args.naive_rows
            if per_user == 3 and users > 1000:
                n_rows = min(n_rows, 100)
            took, seen = naive(labels, m, n_rows)
            full = took * stats.pairs / seen
            rows.append(
                (
                    f"{users:,}",
                    per_user,
                    f"{stats.pairs:,}",
                    f"{ours:.2f} s",
                    f"{full:.0f} s" + ("" if n_rows == users else f" (extrapolated from {seen:,} pairs)"),
                    f"{full / ours:.0f}x",
                )
            )
    table(rows, ["users", "templates each", "pairs", "ours", "naive double loop", "speed-up"])
    print(f"peak resident memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
