"""FaceIndex's fast search gives exactly the answers of the plain formula, with BLAS left as found."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import faces


def plain_identify(labels, templates, encoding):
    """The textbook search: every Euclidean distance, the closest, the closest other label."""
    d = np.linalg.norm(np.asarray(templates, np.float64) - np.asarray(encoding, np.float64), axis=1)
    best = int(np.argmin(d))
    others = d[np.array([label != labels[best] for label in labels])]
    return labels[best], d[best], others.min() if len(others) else np.inf


@pytest.mark.parametrize("seed", range(5))
def test_identify_matches_the_plain_formula(seed):
    rng = np.random.default_rng(seed)
    people = rng.normal(0, 0.09, (300, 128))
    labels = list(rng.integers(0, 120, 300))  # labels repeat: several templates per user
    query = people[7] + rng.normal(0, 0.02, 128)
    index = faces.FaceIndex(labels, people)
    match = index.identify(query)
    label, nearest, runner_up = plain_identify(labels, people, query)
    assert match.label == label
    assert match.distance == pytest.approx(nearest, abs=1e-5)
    assert match.runner_up == pytest.approx(runner_up, abs=1e-5)
    assert index.distances(query) == pytest.approx(
        np.linalg.norm(people - query, axis=1), abs=1e-5)


def test_one_label_and_empty_index():
    one = faces.FaceIndex(["grace", "grace"], np.ones((2, 128)) * [[0.1], [0.2]])
    match = one.identify(np.full(128, 0.1))
    assert match.label == "grace" and match.distance == pytest.approx(0, abs=1e-3)
    assert match.runner_up == float("inf")
    assert faces.FaceIndex().identify(np.zeros(128)).label is None


def test_search_leaves_the_blas_thread_count_as_it_was():
    before = [lib["num_threads"] for lib in threadpool_info()]
    faces.FaceIndex(range(1000), np.random.default_rng(0).normal(0, 0.09, (1000, 128))).identify(np.zeros(128))
    assert [lib["num_threads"] for lib in threadpool_info()] == before
