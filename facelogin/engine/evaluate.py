"""Accuracy measurement over a labelled photo folder: distances, error rates and a login simulation.

Pure functions over numpy arrays, used by `flask faces evaluate`; nothing here knows Flask.
"""

import os
from itertools import combinations, islice

import cv2
import numpy as np

from facelogin.engine import faces, liveness

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")  # what faces.read_image accepts


def list_people(root):
    """Return {person: [photo paths]} for DIR/<person>/*.jpg, sorted for repeatable runs."""
    people = {}
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if os.path.isdir(folder):
            photos = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.lower().endswith(PHOTO_SUFFIXES)]
            if photos:
                people[name] = photos
    return people


def encode_photo(path, min_face_height=80, detect_width=1024):
    """Return (encoding, None) for a photo with exactly one usable face, else (None, problem)."""
    try:
        with open(path, "rb") as f:
            rgb = faces.read_image(f.read())
    except faces.ImageError:
        return None, "not_an_image"
    check = faces.find_single_face(rgb, min_face_height, detect_width)
    if check.problem:
        return None, check.problem
    return faces.encode_face(rgb, check.box), None


def split_pairs(people):
    """Return (genuine, impostor) distance arrays over every pair of encodings."""
    items = [(name, e) for name, encodings in people.items() for e in encodings]
    genuine, impostor = [], []
    for (a, ea), (b, eb) in combinations(items, 2):
        (genuine if a == b else impostor).append(float(np.linalg.norm(ea - eb)))
    return np.array(genuine), np.array(impostor)


def error_rates(genuine, impostor, tolerance):
    """Return (FAR, FRR) at `tolerance`: impostors accepted, genuine pairs refused."""
    far = float(np.mean(impostor <= tolerance)) if len(impostor) else 0.0
    frr = float(np.mean(genuine > tolerance)) if len(genuine) else 0.0
    return far, frr


def equal_error_rate(genuine, impostor):
    """Return (EER, tolerance): the level where the FAR and FRR step curves cross, and a tolerance at it.

    Both rates are step functions of the tolerance, so they seldom meet exactly; they cross at the
    smallest value that the larger of the two reaches, min over t of max(FAR(t), FRR(t)). Averaging FAR
    and FRR where they are closest (the old way) gives a figure no tolerance reaches: with 0.17 % / 0.56 %
    at one step and 0.28 % / 0 % at the next it printed 0.14 %, below every row of the table.
    """
    candidates = np.unique(np.concatenate([genuine, impostor]))
    best = min(candidates, key=lambda t: max(error_rates(genuine, impostor, t)))
    return max(error_rates(genuine, impostor, best)), float(best)


def largest_tolerance(genuine, impostor, target_far):
    """Return the largest tolerance whose measured FAR stays at or under `target_far`."""
    below = np.sort(impostor)
    # Accepting k impostor pairs of n gives FAR k/n: allow the largest k within target.
    allowed = int(np.floor(target_far * len(below)))
    if allowed >= len(below):
        return float("inf")
    return float(np.nextafter(below[allowed], 0))


def simulate_logins(people, tolerance, margin):
    """Enrol each person's first photo, log in with the rest; count correct, wrong-user and refused."""
    gallery = {name: encodings[0] for name, encodings in people.items() if encodings}
    index = faces.FaceIndex(list(gallery), list(gallery.values()))
    counts = {"correct": 0, "wrong_user": 0, "refused": 0}
    for name, encodings in people.items():
        for probe in encodings[1:]:
            match = index.identify(probe)
            if not faces.accepts(match, tolerance, margin):
                counts["refused"] += 1
            else:
                counts["correct" if match.label == name else "wrong_user"] += 1
    return counts


def simulate_strangers(people, tolerance, margin):
    """Leave each person out of a gallery of everyone's first photo and log in with all their photos.

    Return {"probes", "accepted"}: how often a stranger (not enrolled) would be let in as somebody.
    """
    counts = {"probes": 0, "accepted": 0}
    for name, encodings in people.items():
        others = {n: e[0] for n, e in people.items() if n != name and e}
        if not others:
            continue
        index = faces.FaceIndex(list(others), list(others.values()))
        for probe in encodings:
            counts["probes"] += 1
            counts["accepted"] += faces.accepts(index.identify(probe), tolerance, margin)
    return counts


def summarise(people, tolerances, tolerance, margin, target_far):
    """Return every figure `flask faces evaluate` prints, as plain numbers."""
    genuine, impostor = split_pairs(people)
    eer, eer_at = equal_error_rate(genuine, impostor) if len(genuine) and len(impostor) else (None, None)

    def stats(d):
        return {
            "pairs": int(len(d)),
            **({"mean": float(d.mean()), "min": float(d.min()), "max": float(d.max())} if len(d) else {}),
        }

    return {
        "people": len(people),
        "photos": sum(len(e) for e in people.values()),
        "genuine": stats(genuine),
        "impostor": stats(impostor),
        "rates": [
            {"tolerance": t, "far": far, "frr": frr}
            for t in tolerances
            for far, frr in [error_rates(genuine, impostor, t)]
        ],
        "eer": eer,
        "eer_tolerance": eer_at,
        # The rates at the EER tolerance, so the EER line can be read against the table.
        "eer_rates": dict(zip(("far", "frr"), error_rates(genuine, impostor, eer_at))) if eer is not None else None,
        "simulation": {"tolerance": tolerance, "margin": margin, **simulate_logins(people, tolerance, margin)},
        "strangers": simulate_strangers(people, tolerance, margin),
        "target_far": target_far,
        "largest_tolerance": largest_tolerance(genuine, impostor, target_far) if len(impostor) else None,
        # With n impostor pairs a measured FAR of 0 only shows FAR < 1/n.
        "far_resolution": 1 / len(impostor) if len(impostor) else None,
    }


# --- Challenge liveness over a folder of recorded attempts (`flask faces liveness DIR`) -------------

VIDEO_SUFFIXES = (".mp4", ".avi")


def list_liveness_clips(root):
    """Return sorted (label, challenge, path) for DIR/<label>/<challenge>/ videos or frame folders.

    `label` is "genuine" or an attack type; a clip is a .mp4/.avi file or a folder of images.
    """
    clips = []
    for label in sorted(os.listdir(root)):
        for challenge in (
            sorted(os.listdir(os.path.join(root, label))) if os.path.isdir(os.path.join(root, label)) else ()
        ):
            folder = os.path.join(root, label, challenge)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                path = os.path.join(folder, name)
                if (os.path.isfile(path) and name.lower().endswith(VIDEO_SUFFIXES)) or (
                    os.path.isdir(path) and any(f.lower().endswith(PHOTO_SUFFIXES) for f in os.listdir(path))
                ):
                    clips.append((label, challenge, path))
    return clips


def read_clip(path):
    """Yield the RGB frames of a video file, or of a folder's images in name order."""

    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.lower().endswith(PHOTO_SUFFIXES):
                frame = cv2.imread(os.path.join(path, name), cv2.IMREAD_COLOR)
                if frame is not None:
                    yield faces.frame_to_rgb(frame)
        return
    capture = cv2.VideoCapture(path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield faces.frame_to_rgb(frame)
    finally:
        capture.release()


def liveness_rates(results):
    """Return ISO/IEC 30107-3 rates from (label, accepted) pairs: BPCER of "genuine", APCER per attack label."""
    genuine = {"count": 0, "refused": 0}
    attacks = {}
    for label, accepted in results:
        if label == "genuine":
            genuine["count"] += 1
            genuine["refused"] += not accepted
        else:
            row = attacks.setdefault(label, {"count": 0, "accepted": 0})
            row["count"] += 1
            row["accepted"] += bool(accepted)
    genuine["bpcer"] = genuine["refused"] / genuine["count"] if genuine["count"] else None
    for row in attacks.values():
        row["apcer"] = row["accepted"] / row["count"]
    return {"genuine": genuine, "attacks": dict(sorted(attacks.items()))}


def presentation_accepted(rgb_frames, challenge, tolerance, max_frames, **watch):
    """Return True if a clip answers `challenge` with a live movement by one person throughout.

    The same checks as a login, without a gallery: the movement (`liveness.watch_for_challenge`),
    then the start and peak frames must show faces within `tolerance` of each other.
    """
    movement = liveness.watch_for_challenge(islice(rgb_frames, max_frames), challenge, **watch)
    if movement.reason is not None or not movement.frames:
        return False
    encodings = []
    for rgb in movement.frames:
        check = faces.find_single_face(
            rgb, watch.get("min_face_height", 80), watch.get("detect_width", 320), quick=True
        )
        if check.problem:
            return False
        encodings.append(faces.encode_face(rgb, check.box))
    return bool(faces.face_distance(encodings[1:], encodings[0]).max() <= tolerance)
