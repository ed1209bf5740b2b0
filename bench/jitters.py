"""Does encoding enrolment photos with several jitters bring genuine distances down on real photos?

For each N, every accepted photo of the real-photo set (bench/real_photos.py) is encoded with N jitters
as an enrolment template and compared with every other photo encoded with 1 jitter, as a login frame
would be: genuine pairs (same person) and impostor pairs. The 1-jitter baseline runs in the same
process. Also the 1:N login run with each person's first photo enrolled with N jitters, and the time
to encode one photo with N jitters (a sample of photos, N interleaved so the machine's load hits all).

    .venv/bin/python bench/jitters.py [--jitters 1,5,10,20] [--root /work/evalset] [--timing-photos 12]
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from bench import common, real_photos  # noqa: E402
from facelogin.engine import evaluate, faces  # noqa: E402


def cross_pairs(templates, probes):
    """Return (genuine, impostor) distances of each template to every other photo's probe encoding."""
    items = [(name, t, p) for name in templates for t, p in zip(templates[name], probes[name])]
    genuine, impostor = [], []
    for i, (a, template, _) in enumerate(items):
        for j, (b, _, probe) in enumerate(items):
            if i != j:
                (genuine if a == b else impostor).append(float(np.linalg.norm(template - probe)))
    return np.array(genuine), np.array(impostor)


def login_run(templates, probes, tolerance, margin):
    """Return the 1:N counts with each person's first photo enrolled from `templates`, the rest as probes."""
    people = {name: [templates[name][0], *probes[name][1:]] for name in templates}
    return evaluate.simulate_logins(people, tolerance, margin)


def encode_seconds(root, jitters, count):
    """Return {N: median seconds} to encode one photo with N jitters, over `count` photos."""
    photos = [paths[0] for paths in real_photos.load_set(root).values()][:count]
    faces_found = []
    for path in photos:
        with open(path, "rb") as f:
            rgb = faces.read_image(f.read())
        check = faces.find_single_face(rgb, real_photos.MIN_FACE_HEIGHT, real_photos.DETECT_WIDTH)
        if check.box:
            faces_found.append((rgb, check.box))
    times = {n: [] for n in jitters}
    for rgb, box in faces_found:
        for n in jitters:
            start = time.perf_counter()
            faces.encode_face(rgb, box, jitters=n)
            times[n].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}, len(faces_found)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jitters", default="1,5,10,20")
    parser.add_argument("--root", default=real_photos.ROOT)
    parser.add_argument("--timing-photos", type=int, default=12)
    args = parser.parse_args()
    jitters = sorted({1, *(int(n) for n in args.jitters.split(","))})
    common.header("Enrolment jitters on real photos: template with N jitters against 1-jitter probes")

    probes = real_photos.encodings(args.root, 1)
    photos = sum(len(v) for v in probes.values())
    print(
        f"{len(probes)} people, {photos} accepted photos; "
        f"tolerance {real_photos.TOLERANCE}, margin {real_photos.MARGIN}\n"
    )
    seconds, timed_photos = encode_seconds(args.root, jitters, args.timing_photos)
    rows, base = [], None
    for n in jitters:
        templates = real_photos.encodings(args.root, n)
        genuine, impostor = cross_pairs(templates, probes)
        far, frr = evaluate.error_rates(genuine, impostor, real_photos.TOLERANCE)
        run = login_run(templates, probes, real_photos.TOLERANCE, real_photos.MARGIN)
        gap = impostor.mean() - genuine.mean()
        spread = np.sqrt((genuine.var() + impostor.var()) / 2)
        if base is None:
            base = (genuine.mean(), impostor.mean(), gap / spread, seconds[n])
        rows.append(
            [
                n,
                f"{genuine.mean():.4f} ({genuine.mean() - base[0]:+.4f})",
                f"{np.median(genuine):.4f}",
                f"{impostor.mean():.4f} ({impostor.mean() - base[1]:+.4f})",
                f"{impostor.min():.3f}",
                f"{gap / spread:.3f} ({gap / spread / base[2]:.3f}x)",
                f"{frr:.2%}",
                f"{far:.4%}",
                f"{run['correct']}/{run['correct'] + run['refused'] + run['wrong_user']}, {run['wrong_user']} wrong",
                f"{seconds[n] * 1000:.0f} ({seconds[n] / base[3]:.1f}x)",
            ]
        )
    common.table(
        rows,
        [
            "N",
            "genuine mean (vs 1)",
            "genuine median",
            "impostor mean (vs 1)",
            "impostor min",
            "d' (vs 1)",
            "FRR at tol",
            "FAR at tol",
            "1:N correct",
            f"ms/photo (x1), median of {timed_photos}",
        ],
    )
    print(
        f"pairs per N: {len(genuine)} genuine, {len(impostor)} impostor (ordered: template of photo A, probe photo B). "
        "d' = (impostor mean - genuine mean) / sqrt((var_g + var_i) / 2): the separation."
    )


if __name__ == "__main__":
    main()
