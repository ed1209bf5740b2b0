"""The gallery operating point: blocked impostor pairs, the binomial bounds, FPIR and the 1:N guard."""

import math
import xml.etree.ElementTree as ET
from itertools import combinations

import numpy as np
import pytest

from facelogin.engine import plot, report


def _gallery(users=60, templates=150, spread=0.045, seed=1):
    """Random 128-d templates, several per user, close enough that some pairs fall under 0.6."""
    rng = np.random.default_rng(seed)
    labels = [int(x) for x in rng.integers(0, users, templates)]
    return labels, rng.normal(0, spread, (templates, 128)).astype(np.float32)


def _naive(labels, matrix):
    """Every pair of users at the smallest distance between their templates, by a double loop."""
    by = {}
    for label, t in zip(labels, matrix):
        by.setdefault(label, []).append(t)
    return {
        frozenset((a, b)): min(float(np.linalg.norm(x - y)) for x in by[a] for y in by[b])
        for a, b in combinations(by, 2)
    }


@pytest.mark.parametrize("block", [report.BLOCK_CELLS, 500])
def test_blocked_pairs_equal_a_double_loop(monkeypatch, block):
    monkeypatch.setattr(report, "BLOCK_CELLS", block)  # 500 cells: many blocks of a few users
    labels, matrix = _gallery()
    stats = report.impostor_pairs(labels, matrix, tolerance=0.6, margin=0.08)
    naive = _naive(labels, matrix)
    d = np.array(sorted(naive.values()))
    assert stats.users == len(set(labels)) and stats.templates == 150 and stats.pairs == len(naive)
    assert stats.histogram.sum() == stats.pairs
    assert np.array_equal(stats.histogram, np.histogram(d, bins=report.BINS, range=(0, 2))[0])
    assert stats.under_tolerance == int((d <= 0.6).sum()) > 0
    assert stats.lookalike_count == int((d < 0.68).sum()) == len(stats.close)
    assert np.allclose(stats.close, d[d < 0.68], atol=1e-5)
    for (a, b), dist in zip(stats.close_users, stats.close):
        assert a != b and naive[frozenset((a, b))] == pytest.approx(dist, abs=1e-5)


def test_empty_and_single_user_galleries():
    for labels in ([], [7]):
        stats = report.impostor_pairs(labels, np.zeros((len(labels), 128), np.float32), 0.45, 0.08)
        assert stats.pairs == 0 and stats.lookalike_count == 0
        est = report.estimates(stats)
        # No pair, no evidence: the bound stays 1 (a stranger vs the one user is not measured).
        assert est.fmr == 0 and est.fpir == 0 and est.fmr_upper == 1 and est.fpir_upper == len(labels)
        assert report.guard(stats, 0.45, 0.01, 0.4).action == "ok"


def test_rule_of_three_when_no_pair_is_under_the_tolerance():
    rng = np.random.default_rng(2)
    matrix = rng.normal(0, 0.1, (200, 128)).astype(np.float32)  # pairs at about 1.6: none under 0.45
    stats = report.impostor_pairs(range(200), matrix, 0.45, 0.08)
    est = report.estimates(stats)
    assert stats.pairs == 19900 and est.matches == 0 and est.fmr == 0
    assert est.fmr_upper == pytest.approx(3 / 19900) and est.method == "rule of three (3/n)"
    assert est.fpir == 0 and est.fpir_upper == pytest.approx(1 - (1 - 3 / 19900) ** 200)
    # The exact bound for no event, 1 - 0.05^(1/n), is what the rule of three approximates.
    assert est.fmr_upper == pytest.approx(1 - 0.05 ** (1 / 19900), rel=0.002)


@pytest.mark.parametrize(("k", "n"), [(1, 1000), (3, 20), (5, 500_000), (50, 10**6)])
def test_clopper_pearson_bound_leaves_five_percent_below(k, n):
    upper, method = report.fmr_upper(k, n)
    # At the bound, seeing k or fewer events has a 5 % chance (summed here term by term).
    cdf = sum(math.comb(n, j) * upper**j * (1 - upper) ** (n - j) for j in range(k + 1))
    assert method == "Clopper-Pearson" and upper > k / n and cdf == pytest.approx(0.05, rel=1e-6)


def test_fpir_grows_with_the_gallery():
    assert report.fpir(1e-5, 1) == pytest.approx(1e-5)
    assert report.fpir(1e-5, 1000) == pytest.approx(1 - (1 - 1e-5) ** 1000)
    assert report.fpir(1e-5, 100_000) > 0.6 and report.fpir(1.0, 5) == 1.0


def _twin_gallery(twin_distance, users=30, seed=3):
    """Users far apart, and one pair `twin_distance` apart."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0, 0.1, (users, 128)).astype(np.float32)
    step = np.zeros(128, np.float32)
    step[0] = twin_distance
    matrix[1] = matrix[0] + step
    return report.impostor_pairs(range(users), matrix, 0.45, 0.08)


def test_guard_keeps_tightens_or_asks_for_the_username():
    stats = _twin_gallery(0.42)  # 1 pair of 435 under 0.45: FPIR 1-(1-1/435)^30 = 6.7 %
    assert report.estimates(stats).fpir == pytest.approx(1 - (1 - 1 / 435) ** 30)
    assert report.guard(stats, 0.45, 0.1, 0.4).action == "ok"
    tight = report.guard(stats, 0.45, 0.01, 0.4)
    assert tight.action == "tighten" and tight.tolerance == pytest.approx(0.42, abs=1e-4) and tight.fpir == 0
    assert tight.tolerance < stats.close[0]  # just under the twins
    assert report.estimates(stats, tight.tolerance).matches == 0
    twins = report.guard(_twin_gallery(0.2), 0.45, 0.01, 0.4)  # tightening would reach 0.2
    assert twins.action == "username" and twins.tolerance == 0.45 and "username" in twins.reason


def test_histogram_svg_is_valid_accessible_and_escaped():
    svg = plot.histogram_svg(
        [("impostor", plot.rebin(np.arange(report.BINS), report.BIN_WIDTH)), ("genuine", plot.bin_distances([0.1]))],
        [("tolerance", 0.45), ("tightened", 0.4)],
        "Distances <here>",
        "a & b",
    )
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("role") == "img"
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.find("s:title", ns).text == "Distances <here>" and root.find("s:desc", ns).text == "a & b"
    assert len(root.findall("s:line", ns)) == 2 and "style" not in svg and "script" not in svg
    # Everything past PLOT_MAX sits in the last drawn bin: no pair is lost.
    assert plot.rebin(np.arange(report.BINS), report.BIN_WIDTH).sum() == np.arange(report.BINS).sum()
