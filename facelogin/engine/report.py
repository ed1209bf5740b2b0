"""The operating point of one gallery: distances between enrolled users, false-match estimates, the 1:N guard.

Pure functions over numpy arrays, used by `flask faces report`, /admin and the login guard;
nothing here knows Flask. Every pair of different users is an impostor pair, scored as the
smallest distance between any of their templates (what a login would see at best).
"""

import math
from typing import NamedTuple

import numpy as np

BIN_WIDTH = 0.01  # the stored histogram's bins of impostor distances
BINS = 200  # 0 to 2.0; the last bin also holds anything further
BLOCK_CELLS = 4_000_000  # float32 distances computed at once: 16 MB whatever the gallery's size
KEEP_CLOSE = 100_000  # closest pairs kept with their users; the guard needs far fewer
CONFIDENCE = 0.95  # one-sided upper bounds
EXACT_UP_TO = 100_000  # matches counted exactly by the binomial sum; above, the normal approximation


class PairStats(NamedTuple):
    """The impostor distances of a gallery: counts, histogram, and its closest pairs."""

    users: int
    templates: int
    pairs: int  # users * (users - 1) / 2
    histogram: np.ndarray  # pairs per BIN_WIDTH of distance, from 0
    tolerance: float  # the tolerance counted at
    under_tolerance: int  # pairs at or under `tolerance`: the estimated false matches
    near: float  # tolerance + margin: pairs under this are look-alikes
    lookalike_count: int
    close: np.ndarray  # the (at most KEEP_CLOSE) smallest pair distances under `near`, ascending
    close_users: np.ndarray  # (len(close), 2) labels of those pairs


def _padded(labels, matrix):
    """Return (user labels, templates per user K, matrix of K rows per user).

    A user with fewer than K templates repeats its first one: a minimum over the
    user's rows is unchanged, and every user's rows become one reshape away.
    """
    labels = np.asarray(labels, dtype=object)
    matrix = np.asarray(matrix, dtype=np.float32)
    rows = {}
    for i, label in enumerate(labels):
        rows.setdefault(label, []).append(i)
    k = max((len(r) for r in rows.values()), default=1)
    take = np.array([r + [r[0]] * (k - len(r)) for r in rows.values()], dtype=np.int64).reshape(-1)
    return np.array(list(rows), dtype=object), k, np.ascontiguousarray(matrix[take])


def impostor_pairs(labels, matrix, tolerance, margin):
    """Return PairStats over every pair of different labels of a FaceIndex-like (labels, templates matrix).

    Users are taken in blocks against every later user, so memory stays at BLOCK_CELLS
    distances and only the upper triangle is computed: 10k users give 50M pairs in seconds.
    """
    users, k, m = _padded(labels, matrix)
    count, templates = len(users), len(labels)
    sq = np.einsum("ij,ij->i", m, m)
    near = tolerance + margin
    histogram = np.zeros(BINS, dtype=np.int64)
    under = lookalikes = 0
    close, close_i, close_j = [], [], []
    a = 0
    while a < count:
        later = count - a
        b = min(count, a + max(1, BLOCK_CELLS // (later * k * k)))
        d = m[a * k : b * k] @ m[a * k :].T
        d *= -2.0
        d += sq[a * k : b * k, None]
        d += sq[None, a * k :]
        if k > 1:  # each pair of users at the closest of their templates
            d = d.reshape(b - a, k, later, k).min(axis=3).min(axis=1)
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
        # A user against itself and earlier users of the block: not pairs (or counted already).
        d[np.tril_indices(b - a, 0, d.shape[1])] = np.inf
        under += int(np.count_nonzero(d <= tolerance))
        i, j = np.nonzero(d < near)
        lookalikes += len(i)
        if len(i):
            close.append(d[i, j])
            close_i.append(i + a)
            close_j.append(j + a)
            if sum(len(x) for x in close) > 2 * KEEP_CLOSE:
                close, close_i, close_j = [np.concatenate(x) for x in (close, close_i, close_j)]
                keep = np.argsort(close, kind="stable")[:KEEP_CLOSE]
                close, close_i, close_j = [close[keep]], [close_i[keep]], [close_j[keep]]
        # inf lands in the last bin: take those cells out again.
        binned = np.minimum(d * (1 / BIN_WIDTH), BINS - 1).astype(np.int64)
        histogram += np.bincount(binned.ravel(), minlength=BINS)
        histogram[-1] -= (b - a) * (b - a + 1) // 2
        a = b
    close = np.concatenate(close) if close else np.zeros(0, np.float32)
    pairs_ij = np.stack([np.concatenate(close_i), np.concatenate(close_j)], 1) if len(close) else np.zeros((0, 2), int)
    order = np.argsort(close, kind="stable")[:KEEP_CLOSE]
    return PairStats(
        users=count,
        templates=templates,
        pairs=count * (count - 1) // 2,
        histogram=histogram,
        tolerance=float(tolerance),
        under_tolerance=under,
        near=float(near),
        lookalike_count=lookalikes,
        close=close[order].astype(np.float64),
        close_users=users[pairs_ij[order]] if len(order) else np.zeros((0, 2), dtype=object),
    )


# --- estimates ---------------------------------------------------------------------------------


def _binomial_cdf(k, n, p):
    """Return P(X <= k) for X ~ Binomial(n, p), summed in logs (k up to EXACT_UP_TO)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    j = np.arange(1, k + 1, dtype=np.float64)
    log_choose = np.r_[0.0, np.cumsum(np.log(n - j + 1) - np.log(j))]
    j = np.arange(k + 1, dtype=np.float64)
    terms = log_choose + j * math.log(p) + (n - j) * math.log1p(-p)
    top = terms.max()
    return float(math.exp(top) * np.exp(terms - top).sum())


def fmr_upper(k, n, confidence=CONFIDENCE):
    """Return a one-sided upper confidence bound on a rate after k events in n trials, and how it was got.

    No event: the rule of three, 3/n (the exact bound is 1 - 0.05^(1/n), within 0.2 % of it).
    Otherwise the exact Clopper-Pearson bound, the p where P(X <= k) = 1 - confidence,
    found by bisection; past EXACT_UP_TO events the normal approximation, equal to it there.
    """
    if n <= 0:
        return 1.0, "no pairs"
    if k == 0:
        return min(1.0, 3.0 / n), "rule of three (3/n)"
    if k >= n:
        return 1.0, "every pair"
    alpha = 1.0 - confidence
    if k > EXACT_UP_TO:
        p = k / n
        return min(1.0, p + 1.6448536269514722 * math.sqrt(p * (1 - p) / n)), "normal approximation"
    lo, hi = math.log(k / n), 0.0  # the bound lies above the observed rate
    for _ in range(80):
        mid = (lo + hi) / 2
        if _binomial_cdf(k, n, math.exp(mid)) > alpha:
            lo = mid
        else:
            hi = mid
    return min(1.0, math.exp(hi)), "Clopper-Pearson"


def fpir(fmr, users):
    """Return the chance that a stranger falls within tolerance of at least one of `users` people: 1-(1-FMR)^N."""
    if not users:
        return 0.0
    return 1.0 if fmr >= 1.0 else float(-math.expm1(users * math.log1p(-fmr)))


def max_false_matches(pairs, users, max_fpir):
    """Return the most impostor pairs under the tolerance whose estimated FPIR stays at or under `max_fpir`."""
    if users == 0 or pairs == 0:
        return 0
    fmr_allowed = -math.expm1(math.log1p(-max_fpir) / users)  # 1-(1-FPIR)^(1/N)
    return int(math.floor(fmr_allowed * pairs * (1 + 1e-12)))


class Estimates(NamedTuple):
    """The false-match rate of a gallery at one tolerance, with bounds, and the 1:N rate it gives."""

    tolerance: float
    matches: int
    pairs: int
    fmr: float
    fmr_upper: float
    method: str
    fpir: float
    fpir_upper: float


def estimates(stats, tolerance=None):
    """Return the Estimates of `stats` at its tolerance or at a tighter one."""
    if tolerance is None or tolerance >= stats.tolerance:
        tolerance, k = stats.tolerance, stats.under_tolerance
    else:
        k = int(np.count_nonzero(stats.close <= tolerance))
    rate = k / stats.pairs if stats.pairs else 0.0
    upper, method = fmr_upper(k, stats.pairs)
    return Estimates(
        float(tolerance), k, stats.pairs, rate, upper, method, fpir(rate, stats.users), fpir(upper, stats.users)
    )


# --- the 1:N guard ------------------------------------------------------------------------------


class Guard(NamedTuple):
    """What face-only (1:N) login does with this gallery: "ok", "tighten" or "username"."""

    action: str
    tolerance: float  # the tolerance face-only login uses
    fpir: float  # estimated FPIR at that tolerance ("username": at the configured one)
    reason: str


def guard(stats, tolerance, max_fpir, floor):
    """Decide the 1:N operating point: keep `tolerance`, tighten it, or ask for the username.

    The estimated FPIR (point estimate) at `tolerance` is compared with `max_fpir`. Above it,
    the tolerance becomes the largest one at which no more impostor pairs fall than `max_fpir`
    allows, never looser than `tolerance`; below `floor` that costs too many genuine logins,
    so face-only login asks for the username (1:1) instead.
    """
    now = estimates(stats, tolerance)
    if now.fpir <= max_fpir:
        return Guard("ok", tolerance, now.fpir, f"estimated FPIR {now.fpir:.2%} <= {max_fpir:.2%}")
    allowed = max_false_matches(stats.pairs, stats.users, max_fpir)
    tighter = float(np.nextafter(stats.close[allowed], 0.0)) if allowed < len(stats.close) else tolerance
    tighter = min(tighter, tolerance)
    why = f"estimated FPIR {now.fpir:.2%} > {max_fpir:.2%} at tolerance {tolerance:.3f}"
    if tighter < floor:
        return Guard("username", tolerance, now.fpir, f"{why}; tightening would go below {floor:.3f}: username asked")
    then = estimates(stats, tighter)
    return Guard("tighten", tighter, then.fpir, f"{why}; tolerance tightened to {tighter:.3f}")
