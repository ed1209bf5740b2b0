"""The two dlib builds, the prebuilt dlib-bin and `make fast-dlib`'s BLAS build, give the same faces.

The builds live in two venvs (.venv and .venv-blas), so the other build runs in a subprocess on
the very same pixels and boxes, saved to a file: a live comparison on this machine, with no stored
encodings to go stale when a photo package or the CPU changes.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from bench import common
from facelogin.engine import faces
from media import alter, load_bgr, on_canvas

# Measured on the 7 fixture faces below (2026-11-25, AMD EPYC, Debian's OpenBLAS 0.3.21 against
# dlib-bin 20.0.1.post1): largest difference of one number 3.0e-7, largest distance 9.9e-7, float32
# rounding in another order of the sums. The bars leave 10-30x room for another CPU or OpenBLAS.
# Logins compare distances with FACE_TOLERANCE 0.4 and a FACE_MARGIN of 0.08 over the next user: a
# template enrolled under one build moves by at most MAX_DISTANCE under the other, 8,000 times less
# than the margin, so templates enrolled under either build keep working under the other.
MAX_ABS = 1e-5  # largest difference of one of the 128 numbers
MAX_DISTANCE = 1e-5  # largest Euclidean distance between one face's two encodings

OTHER_BUILD = """
import json, sys
import numpy as np
from facelogin.engine import faces
data = np.load(sys.argv[1])
found, encodings = [], []
for i in range(int(data["count"])):
    rgb = data[f"image{i}"]
    found.append([list(b) for b in faces.detect_faces(rgb)])
    encodings.append(faces.encode_face(rgb, tuple(int(v) for v in data[f"box{i}"])).tolist())
build = faces.engine_build()
print(json.dumps({"blas": build.blas, "version": build.version, "boxes": found, "encodings": encodings}))
"""


def fixture_faces(photos):
    """Return RGB pictures of the fixture faces: the three photos and altered camera frames of them."""
    grace, luis, astronaut = (load_bgr(photos[name]) for name in ("grace", "luis", "astronaut"))
    bgr = [
        grace,
        luis,
        astronaut,
        on_canvas(alter(grace, angle=-4, gain=1.1, quality=60, flip=True)),
        on_canvas(alter(luis, angle=5, gain=0.8, quality=70)),
        on_canvas(alter(grace, angle=2, gain=0.6, quality=50), height=240),
        on_canvas(alter(astronaut, angle=-3, gain=1.2, quality=80)),
    ]
    return [faces.frame_to_rgb(image) for image in bgr]


def other_build_or_skip():
    """Return the python of the venv with the other dlib build, or skip (fail when both are required)."""
    python = common.other_build_python()
    if python is None:
        why = (
            "the other dlib build is absent: `make test-fast-dlib` builds dlib with BLAS into .venv-blas "
            "(and .venv has dlib-bin)"
        )
        if os.environ.get("FACELOGIN_BOTH_BUILDS"):
            pytest.fail(why)
        pytest.skip(why)
    return python


def test_both_dlib_builds_find_and_encode_the_same_faces(photos, tmp_path):
    python = other_build_or_skip()
    images = fixture_faces(photos)
    boxes = [faces.detect_faces(rgb)[-1] for rgb in images]  # the largest face of each
    ours = np.array([faces.encode_face(rgb, box) for rgb, box in zip(images, boxes)], dtype=np.float64)
    arrays = {f"image{i}": rgb for i, rgb in enumerate(images)} | {f"box{i}": b for i, b in enumerate(boxes)}
    np.savez(tmp_path / "faces.npz", count=len(images), **arrays)
    done = subprocess.run(
        [python, "-c", OTHER_BUILD, str(tmp_path / "faces.npz")],
        cwd=common.ROOT,
        env=os.environ | {"PYTHONPATH": common.ROOT, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    other = json.loads(done.stdout.splitlines()[-1])
    build = faces.engine_build()
    assert other["blas"] != build.blas and other["version"] == build.version  # two builds of one dlib
    # Detection (HOG) does not use BLAS: the boxes are the same to the pixel.
    assert other["boxes"] == [[list(b) for b in faces.detect_faces(rgb)] for rgb in images]
    theirs = np.array(other["encodings"], dtype=np.float64)
    abs_diff = float(np.abs(ours - theirs).max())
    distance = float(np.linalg.norm(ours - theirs, axis=1).max())
    print(f"{len(images)} faces: largest difference {abs_diff:.3g}, largest distance {distance:.3g}", file=sys.stderr)
    assert abs_diff <= MAX_ABS and distance <= MAX_DISTANCE


@pytest.fixture(scope="module")
def grace_rgb(photos):
    return faces.frame_to_rgb(load_bgr(photos["grace"]))


def test_the_engine_says_which_build_it_runs():
    import dlib

    build = faces.engine_build()
    assert build.blas == dlib.DLIB_USE_BLAS and build.version == dlib.__version__
    assert build.distribution == ("dlib" if build.blas else "dlib-bin")
    assert str(build).startswith(f"dlib {dlib.__version__} {'with' if build.blas else 'without'} BLAS")
    if build.blas:
        assert build.blas_library == "OpenBLAS"  # what `make fast-dlib` links, from Debian's libopenblas-dev


def test_encoding_runs_on_one_blas_thread_and_gives_the_others_back(grace_rgb, monkeypatch):
    box = faces.find_single_face(grace_rgb).box
    engine = faces._engine()
    real, seen = engine.face_encodings, []

    def watched(*args, **kwargs):
        seen.append({lib.filepath: lib.num_threads for lib in faces._blas().select(user_api="blas").lib_controllers})
        return real(*args, **kwargs)

    before = {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
    monkeypatch.setattr(engine, "face_encodings", watched)
    faces.encode_face(grace_rgb, box)
    # Every BLAS library the process loaded, dlib's own included when it has one, had one thread meanwhile.
    assert seen and set(seen[0]) >= set(before) and set(seen[0].values()) == {1}
    assert {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"} == before


def test_encoding_time_is_measured():
    assert faces.encoding_time(repeats=1) > 0  # seconds, the median of the timed calls
