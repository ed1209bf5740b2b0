"""The real-photo evaluation set: rebuild it from public repositories, measure the defaults on it, and load it.

The photos are never committed: `real_photos.tsv` lists, for every `<person>/<photo>`, the public
repository, commit and path it comes from and the SHA-1 of its bytes. See real_photos.md.

    .venv/bin/python bench/real_photos.py build MIRRORS [--root /work/evalset]
    .venv/bin/python bench/real_photos.py evaluate [--root /work/evalset]

MIRRORS holds one git directory or clone per repository, named `owner+name` (as the `fetch` tool lays
them out, `owner+name/repo`) or `owner/name` (as `git clone` into MIRRORS/owner would).

Other scripts import `load_set(root)` and `encodings(root, jitters)`; the encodings are cached in
`<root>/.cache-<jitters>.npz` (delete it after changing the detector or the photos).
"""

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from facelogin.engine import evaluate, faces  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "real_photos.tsv")
ROOT = "/work/evalset"
# The defaults of facelogin/config.py, and the photo checks of `flask faces evaluate`.
TOLERANCE, MARGIN, MIN_FACE_HEIGHT, DETECT_WIDTH = 0.45, 0.08, 80, 1024
TOLERANCES = [0.35, 0.4, 0.45, 0.5, 0.55, 0.6]


def manifest():
    """Return the manifest rows as dicts: person, photo, repo, commit, path, sha1."""
    with open(MANIFEST, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _git_dir(mirrors, repo):
    """Return the git directory of `repo` ("owner/name") under `mirrors`, or None."""
    owner, name = repo.split("/")
    for candidate in (
        os.path.join(mirrors, f"{owner}+{name}", "repo"),
        os.path.join(mirrors, f"{owner}+{name}"),
        os.path.join(mirrors, owner, name, ".git"),
        os.path.join(mirrors, name, ".git"),
    ):
        if os.path.exists(os.path.join(candidate, "HEAD")):
            return candidate
    return None


def build(mirrors, root=ROOT):
    """Copy every manifest photo out of its repository's commit into root/<person>/<photo>; check its SHA-1."""
    missing = []
    for row in manifest():
        git_dir = _git_dir(mirrors, row["repo"])
        if git_dir is None:
            missing.append(row["repo"])
            continue
        data = subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{row['commit']}:{row['path']}"], capture_output=True, check=True
        ).stdout
        if hashlib.sha1(data).hexdigest() != row["sha1"]:
            raise SystemExit(f"{row['repo']} {row['path']}: not the photo the manifest lists (SHA-1 differs)")
        os.makedirs(os.path.join(root, row["person"]), exist_ok=True)
        with open(os.path.join(root, row["person"], row["photo"]), "wb") as f:
            f.write(data)
    if missing:
        raise SystemExit(f"no git directory under {mirrors} for: {', '.join(sorted(set(missing)))}")


def load_set(root=ROOT):
    """Return {person: [photo paths]} of the set, in photo order (the first is the enrolment photo)."""
    return evaluate.list_people(root)


def _photos_key(people, jitters):
    """Return a digest of the photo names, sizes and the encoding settings, to tell a stale cache."""
    h = hashlib.sha1(f"{jitters} {MIN_FACE_HEIGHT} {DETECT_WIDTH}".encode())
    for paths in people.values():
        for p in paths:
            h.update(f"{p} {os.path.getsize(p)}".encode())
    return h.hexdigest()


def encode_set(root=ROOT, jitters=1):
    """Return ({person: [encodings]}, [(path, problem)], {path: seconds}) as `flask faces evaluate` sees the set.

    A photo is refused as by `evaluate.encode_photo` (the darkness check, one face at least
    MIN_FACE_HEIGHT tall, found on a copy DETECT_WIDTH wide); accepted ones are encoded with `jitters`.
    """
    people, refused, seconds = {}, [], {}
    for name, paths in load_set(root).items():
        for path in paths:
            with open(path, "rb") as f:
                rgb = faces.read_image(f.read())
            check = faces.find_single_face(rgb, MIN_FACE_HEIGHT, DETECT_WIDTH)
            if check.problem:
                refused.append((path, check.problem))
                continue
            start = time.perf_counter()
            people.setdefault(name, []).append(faces.encode_face(rgb, check.box, jitters=jitters))
            seconds[path] = time.perf_counter() - start
    return people, refused, seconds


def encodings(root=ROOT, jitters=1):
    """Return {person: [float32 encodings]} of the accepted photos, cached in root/.cache-<jitters>.npz."""
    people = load_set(root)
    cache = os.path.join(root, f".cache-{jitters}.npz")
    key = _photos_key(people, jitters)
    if os.path.exists(cache):
        data = np.load(cache, allow_pickle=False)
        if str(data["key"]) == key:
            names = [str(n) for n in data["names"]]
            return {n: list(data["enc"][data["owner"] == i]) for i, n in enumerate(names)}
    encoded, _, _ = encode_set(root, jitters)
    names = list(encoded)
    owner = np.array([i for i, n in enumerate(names) for _ in encoded[n]], dtype=np.int32)
    enc = np.array([e for n in names for e in encoded[n]], dtype=np.float32)
    tmp = cache + ".tmp.npz"
    np.savez(tmp, key=key, names=np.array(names), owner=owner, enc=enc)
    os.replace(tmp, cache)
    return encoded


def explain_refusals(people, tolerance=TOLERANCE, margin=MARGIN):
    """Return one line per refused or wrong genuine probe of the 1:N run: why it was not a correct login."""
    gallery = {name: encs[0] for name, encs in people.items()}
    index = faces.FaceIndex(list(gallery), list(gallery.values()))
    lines = []
    for name, encs in people.items():
        for k, probe in enumerate(encs[1:], 2):
            match = index.identify(probe)
            if faces.accepts(match, tolerance, margin) and match.label == name:
                continue
            own = float(np.linalg.norm(probe - gallery[name]))
            others = sorted((float(np.linalg.norm(probe - t)), n) for n, t in gallery.items() if n != name)
            why = (
                "wrong user"
                if faces.accepts(match, tolerance, margin)
                else "own template beyond the tolerance"
                if own > tolerance
                else "another template too close (margin)"
            )
            lines.append(f"{name} probe #{k}: {why}: own {own:.3f}, nearest other {others[0][1]} {others[0][0]:.3f}")
    return lines


def report(root=ROOT):
    """Print the figures of `flask faces evaluate` at the defaults on the set, and why genuine probes fail."""
    common.header("Real photos: `flask faces evaluate` figures at the defaults")
    people, refused, _ = encode_set(root)
    result = evaluate.summarise(people, TOLERANCES, TOLERANCE, MARGIN, 1e-4)
    result["refused_photos"] = [{"photo": os.path.relpath(p, root), "problem": why} for p, why in refused]
    from facelogin.commands import format_summary

    print(format_summary(result))
    print("\nGenuine probes not logged in correctly (enrolment = each person's first accepted photo):")
    print("\n".join(explain_refusals(people)) or "none")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="copy the photos out of the repositories")
    b.add_argument("mirrors")
    b.add_argument("--root", default=ROOT)
    e = sub.add_parser("evaluate", help="print the figures at the defaults")
    e.add_argument("--root", default=ROOT)
    args = parser.parse_args()
    if args.command == "build":
        build(args.mirrors, args.root)
        print(f"{len(manifest())} photos in {args.root}")
    else:
        report(args.root)


if __name__ == "__main__":
    sys.exit(main())
