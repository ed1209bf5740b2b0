"""Bulk enrolment throughput (importer.py): one process against one worker process per core.

The folder holds PEOPLE people, DIR/<username>.jpg, made from the three real photos (Grace
Hopper, Luis Pedro, the astronaut's face) with different rotation, light, mirror and JPEG
loss. Each person costs registration's photo checks, one encoding and one password hash
(the production scrypt, N=2^17), then the database write in the main process.
FACE_TOLERANCE is set to 0.02 here so that altered copies of one photo count as different
people (at 0.45 the import rightly refuses them as a face already enrolled).
Both dlib builds are measured in one run (the other in its venv: see bench/pipeline.py), which
shows the bulk-import gain of the BLAS build.

    .venv/bin/python bench/enroll.py [--people 80] [--this-build-only]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from app import create_app  # noqa: E402
from bench import common  # noqa: E402
from facelogin.services import importer  # noqa: E402
from facelogin.services.consent import Consent  # noqa: E402
from models import db, utcnow  # noqa: E402


def make_people(folder, count):
    """Write `count` photos DIR/person<i>.jpg, altered copies of the three real faces."""
    astronaut = cv2.imread(common.photo("astronaut"))[20:260, 100:340]
    sources = [
        cv2.imread(common.photo("grace")),
        cv2.imread(common.photo("luis")),
        cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC),
    ]
    os.makedirs(folder)
    for i in range(count):
        image = sources[i % 3]
        h, w = image.shape[:2]
        k = i // 3  # the k-th variant of this face
        m = cv2.getRotationMatrix2D((w / 2, h / 2), k % 11 - 5, 1.0 - 0.02 * (k % 4))
        out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        out = np.clip(out * (0.75 + 0.06 * (k % 6)), 0, 255).astype(np.uint8)
        if k % 2:
            out = cv2.flip(out, 1)
        cv2.imwrite(f"{folder}/person{i:03d}.jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 60 + i % 30])


def run(people, workers, folder):
    """Import `people` into a new database with `workers` processes; return (seconds, summary)."""
    app = create_app(
        {
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/db.sqlite",
            "UPLOAD_FOLDER": f"{folder}/uploads",
            "KNOWN_FACES_FOLDER": f"{folder}/known_faces",
            "FACE_TOLERANCE": 0.02,
        }
    )
    with app.app_context():
        db.create_all()
        start = time.perf_counter()
        jobs, summary = importer.plan(people)
        for _ in importer.enrol(jobs, summary, workers, agreed=Consent("bench", utcnow())):
            pass
        return time.perf_counter() - start, summary


def main():
    """Time both ways with this build (and the other one, in its venv) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=80)
    parser.add_argument("--this-build-only", action="store_true", help="do not run the other dlib build")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a run for both_builds
    args = parser.parse_args()
    if not args.json:
        common.header("Bulk enrolment: `flask faces import` in one process vs all cores, both dlib builds")
    folder = tempfile.mkdtemp(prefix="bench-enroll-")
    cores = os.cpu_count()
    try:
        make_people(f"{folder}/people", args.people)
        seconds = []
        for workers in (1, cores):
            took, summary = run(f"{folder}/people", workers, f"{folder}/run{workers}")
            assert len(summary.enrolled) == args.people, summary.refused[:3]
            seconds.append(took)
            print(f"  {workers} process(es): done", file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        common.child_output(seconds)
        return
    runs = common.both_builds(__file__, seconds, ["--people", str(args.people)], not args.this_build_only)
    slowest = args.people / runs[0][2][0]
    rows = []
    for _, blas, times in runs:
        for workers, took in zip((1, cores), times):
            rate = args.people / took
            rows.append(
                (
                    common.build_name(blas),
                    f"{workers} process{'es' if workers > 1 else ''}"
                    + (" (main only)" if workers == 1 else " (worker pool)"),
                    f"{took:.1f}",
                    f"{rate:.2f}",
                    f"{rate / (args.people / times[0]):.2f}x",
                    f"{rate / slowest:.2f}x",
                )
            )
    print(
        f"{args.people} people, one photo each, production password hashing; wall time includes "
        "starting the worker processes:"
    )
    common.table(
        rows, ["dlib", "import", "seconds", "people per second", "against 1 process", f"against {rows[0][0]}, 1"]
    )
    for _, blas, times in runs:
        ratio = times[0] / times[1]
        print(
            f"{common.build_name(blas)}: speed-up on {cores} cores {ratio:.2f}x "
            f"(target >= 1.7x: {'met' if ratio >= 1.7 else 'NOT met'})."
        )


if __name__ == "__main__":
    main()
