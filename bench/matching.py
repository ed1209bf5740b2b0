"""Identification per login at 1k to 1M enrolled users: the naive way against ours, one real SQLite file.

naive: load every User row through the app's models, unpickle, face_recognition.compare_faces
       at 0.6 and take the first True (what a first face-login tutorial does).
ours:  gallery.Gallery().index().identify(q): the change check on the users table, then the
       faces.FaceIndex float32 matrix search (one BLAS thread).
The query is a real encoding of Grace Hopper (from a camera-like frame); her real template is
one of the enrolled rows and both ways must find her. The other templates are random.

    .venv/bin/python bench/matching.py                  # naive up to 100k, ours up to 1M
    .venv/bin/python bench/matching.py --naive-up-to 1000000   # also the naive 1M (about a minute)
    .venv/bin/python bench/matching.py --postgres --sizes 1000,10000,100000   # on a throwaway PostgreSQL
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.orm import undefer  # noqa: E402

from app import create_app  # noqa: E402
from bench import common  # noqa: E402
from facelogin.engine import faces  # noqa: E402
from facelogin.services.gallery import Gallery  # noqa: E402
from models import User, db  # noqa: E402

LAST_YEAR = datetime(2025, 1, 1, tzinfo=UTC)
REPEATS = {1_000: (20, 300), 10_000: (5, 300), 100_000: (3, 100), 1_000_000: (1, 30)}  # naive, ours


def real_encodings():
    """Return Grace's enrolled template (from the photo) and a query (from a darker camera frame)."""
    rgb = faces.read_image(open(common.photo("grace"), "rb").read())
    enrolled = faces.encode_face(rgb, faces.find_single_face(rgb, detect_width=1024).box)
    frame = faces.frame_to_rgb((common.camera_frame("grace") * 0.85).astype(np.uint8))
    query = faces.encode_face(frame, faces.find_single_face(frame).box)
    return enrolled, query


def grow(target, start, rng, grace, grace_at):
    """Add users start..target-1 to the database (dated last year), Grace's real template at row `grace_at`."""
    for lo in range(start, target, 20_000):
        hi = min(target, lo + 20_000)
        templates = rng.normal(0, 0.09, (hi - lo, 128))
        # A large gallery was enrolled over months: the rows carry last year's dates.
        rows = [
            {
                "username": f"user{i}",
                "password_hash": "x",
                "created_at": LAST_YEAR,
                "faces_updated_at": LAST_YEAR + timedelta(seconds=i),
                "face_encodings": [(grace if i == grace_at else templates[i - lo]).tolist()],
            }
            for i in range(lo, hi)
        ]
        db.session.execute(insert(User), rows)
        db.session.commit()


def naive_login(query):
    """The naive identification: every row, unpickled, compare_faces at 0.6, the first True wins."""
    import face_recognition

    users = db.session.execute(db.select(User).options(undefer(User.face_encodings))).scalars().all()
    known = [np.array(user.face_encodings[0]) for user in users]
    matches = face_recognition.compare_faces(known, query, tolerance=0.6)
    found = next((user.id for user, ok in zip(users, matches) if ok), None)
    db.session.remove()  # a new request starts with a new session
    return found


def ours_login(gallery, query):
    """Ours: the gallery's change check, then the index search."""
    label = gallery.index().identify(query).label
    db.session.remove()
    return label


def enrol_one(i, rng):
    """Add one user, as a registration elsewhere would, and return nothing."""
    db.session.add(User(username=f"late{i}", password_hash="x", face_encodings=[rng.normal(0, 0.09, 128).tolist()]))
    db.session.commit()
    db.session.remove()


def rss_mib():
    """Return this process's resident memory in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def index_mib(index):
    """Return the memory held by a FaceIndex's arrays and label objects, in MiB."""
    arrays = index.matrix.nbytes + index.sq_norms.nbytes + index._codes.nbytes + index.labels.nbytes
    sample = index.labels[:1000]
    objects = sum(sys.getsizeof(label) for label in sample) * len(index) / max(1, len(sample))
    return (arrays + objects) / 2**20


def blas_table(size=100_000, repeats=200):
    """Time the matrix-vector step alone, default BLAS threads against one, with 0..all cores busy."""
    from threadpoolctl import threadpool_limits

    matrix = np.random.default_rng(1).normal(0, 0.09, (size, 128)).astype(np.float32)
    q = matrix[0]
    rows = []
    for busy in range(os.cpu_count() + 1):
        with common.busy_cores(busy):
            default = common.median_ms(common.timed(lambda: matrix @ q, repeats))
            with threadpool_limits(1, user_api="blas"):
                pinned = common.median_ms(common.timed(lambda: matrix @ q, repeats))
        rows.append((f"{busy} of {os.cpu_count()} cores busy with other work", f"{default:.3f}", f"{pinned:.3f}"))
    print(f"Matrix-vector step alone at {size:,} templates (median ms of {repeats}):")
    common.table(rows, ["machine", "BLAS default threads", "BLAS pinned to 1 thread"])


def main():
    """Run the comparison and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument(
        "--naive-up-to", type=int, default=100_000, help="largest size the naive way is measured at (default 100000)"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="use a throwaway PostgreSQL cluster (tests/pg_cluster.py) instead of SQLite",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    common.header("Identification per login: naive database scan vs in-memory FaceIndex")
    folder = tempfile.mkdtemp(prefix="bench-matching-")
    cluster, url = None, f"sqlite:///{folder}/bench.sqlite"
    if args.postgres:
        sys.path.insert(0, os.path.join(common.ROOT, "tests"))
        import pg_cluster

        cluster = pg_cluster.Cluster()
        url = pg_cluster.create_database(cluster.start())
    print(f"database: {'PostgreSQL (throwaway local cluster)' if cluster else 'SQLite file'}\n")
    app = create_app(
        {
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": url,
            "UPLOAD_FOLDER": f"{folder}/u",
            "KNOWN_FACES_FOLDER": f"{folder}/k",
        }
    )
    rng = np.random.default_rng(0)
    rows, done = [], 0
    try:
        measure(app, sizes, args, rng, rows, done)
    finally:
        with app.app_context():
            db.engine.dispose()
        if cluster:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print("Per login, median ms (naive: load + unpickle + compare_faces; ours: change check + search):")
    common.table(
        rows,
        [
            "users",
            "naive",
            "ours",
            "ours: change check",
            "ours: search",
            "speed-up",
            "index build s",
            "refresh after 1 new user ms",
            "index MiB (arrays / RSS growth)",
        ],
    )
    if any(r[1] == "not run" for r in rows):
        print(
            f"'not run': the naive way was measured only up to {args.naive_up_to:,} users "
            "(--naive-up-to 1000000 runs it at 1M too); no figure here is extrapolated.\n"
        )
    blas_table()


def measure(app, sizes, args, rng, rows, done):
    """Fill the database size by size and append one table row per size to `rows`."""
    enrolled, query = real_encodings()
    with app.app_context():
        db.create_all()
        grace_at = sizes[0] // 2
        for size in sizes:
            start = time.perf_counter()
            grow(size, done, rng, enrolled, grace_at)
            done = size
            if db.engine.dialect.name == "postgresql":
                # What autovacuum does on a live server: statistics and the visibility
                # map, which let count(*) read the small index instead of every row.
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM ANALYZE users"))
            grace_id = grace_at + 1
            fill = time.perf_counter() - start
            naive_repeats, ours_repeats = REPEATS.get(size, (3, 100))
            if size <= args.naive_up_to:
                assert naive_login(query) == grace_id, "the naive way did not find Grace"
                naive = common.median_ms(common.timed(lambda: naive_login(query), naive_repeats, warmup=0))
            else:
                naive = None
            gallery = Gallery()
            before = rss_mib()
            start = time.perf_counter()
            index = gallery.index()
            build = time.perf_counter() - start
            grown = rss_mib() - before
            assert ours_login(gallery, query) == grace_id, "FaceIndex did not find Grace"
            ours = common.median_ms(common.timed(lambda: ours_login(gallery, query), ours_repeats))  # noqa: F821 - run before the del below
            check = common.median_ms(
                common.timed(lambda: (gallery._current_signature(), db.session.remove()), ours_repeats)  # noqa: F821
            )
            search = common.median_ms(common.timed(lambda: index.identify(query), ours_repeats))  # noqa: F821
            refresh = []
            for i in range(5):  # a registration elsewhere, then the next login here
                enrol_one(f"{size}-{i}", rng)
                start = time.perf_counter()
                gallery.index()
                refresh.append(time.perf_counter() - start)
                db.session.remove()
            done += 5
            rows.append(
                (
                    f"{size:,}",
                    f"{naive:,.1f}" if naive is not None else "not run",
                    f"{ours:.3f}",
                    f"{check:.3f}",
                    f"{search:.3f}",
                    f"{naive / ours:,.0f}x" if naive is not None else "not run",
                    f"{build:.1f}",
                    f"{common.median_ms(refresh):.0f}",
                    f"{index_mib(index):,.0f} / {grown:,.0f}",
                )
            )
            print(f"  {size:,} users: database filled in {fill:.0f} s, measured", file=sys.stderr)
            del index, gallery


if __name__ == "__main__":
    main()
