"""Blink liveness: eye aspect ratios from dlib's 68 landmarks, and a blink found in a burst.

A blink is the eyes' openness dropping well below the person's own open-eye
baseline for a few consecutive frames and coming back. Only detection and
landmarks run per frame (no encoding); the caller re-checks identity on the
frames around the blink. Pure: RGB arrays and numbers in, numbers and tuples
out; nothing here knows Flask.
"""

from collections import deque
from statistics import median
from typing import NamedTuple

import numpy as np

import faces

RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
JAW_LEFT, CHIN, JAW_RIGHT, NOSE_BRIDGE = 0, 8, 16, 27


def eye_aspect_ratio(eye):
    """Return (|p2-p6| + |p3-p5|) / (2 |p1-p4|) for one eye's six points in dlib's order."""
    p = np.asarray(eye, dtype=np.float64)
    width = np.linalg.norm(p[0] - p[3])
    if width == 0:
        return 0.0
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * width))


def face_ear(landmarks):
    """Return the mean eye aspect ratio of both eyes of 68 dlib landmarks."""
    return (eye_aspect_ratio(landmarks[RIGHT_EYE]) + eye_aspect_ratio(landmarks[LEFT_EYE])) / 2.0


def face_aspect(landmarks):
    """Return the face's height (nose bridge to chin) over its width (jaw to jaw)."""
    p = np.asarray(landmarks, dtype=np.float64)
    width = np.linalg.norm(p[JAW_RIGHT] - p[JAW_LEFT])
    return float(np.linalg.norm(p[CHIN] - p[NOSE_BRIDGE]) / width) if width else 0.0


def openness(landmarks):
    """Return the eye aspect ratio divided by the face aspect, or None if the face is flat."""
    # A photo tilted back squashes the eyes and the whole face alike: dividing
    # by the face's own aspect keeps that from looking like a blink.
    aspect = face_aspect(landmarks)
    return face_ear(landmarks) / aspect if aspect > 0 else None


class Blink(NamedTuple):
    """A blink in a sequence: the last open frame before it, its deepest frame, the reopened frame."""

    before: int
    deepest: int
    after: int
    baseline: float  # median open value before the blink
    lowest: float  # value at the deepest frame


def find_blink(values, ratio=0.65, min_closed=2, max_closed=12, min_open=3):
    """Return the first complete Blink in per-frame openness values (None = no face), or None.

    The eyes count as closed below `ratio` x the median of the open frames seen
    so far (at least `min_open` of them), and as open again at halfway back to
    that median. A blink closes for `min_closed` to `max_closed` consecutive
    frames, right after an open frame with a face; a frame without a face ends it.
    """
    opened, start, deepest, base = [], None, None, None
    for i, value in enumerate(values):
        if value is None:
            start = None  # a face lost mid-blink proves nothing
            continue
        if start is None:
            prev_open = i > 0 and values[i - 1] is not None
            if prev_open and len(opened) >= min_open and value < ratio * median(opened):
                start, deepest, base = i, i, median(opened)
            else:
                opened.append(value)
            continue
        if value < values[deepest]:
            deepest = i
        if value >= (1 + ratio) / 2 * base:  # reopened (hysteresis above the closed level)
            if min_closed <= i - start <= max_closed:
                return Blink(start - 1, deepest, i, base, values[deepest])
            start = None
            opened.append(value)
    return None


class Watch(NamedTuple):
    """What a burst showed: the RGB frames around a blink (empty if none) and why not."""

    frames: tuple  # (before, deepest, after) RGB arrays, or () when no blink was seen
    reason: str | None  # None, "no_blink", or the commonest face problem
    seen: int  # frames read
    blink: Blink | None  # indices into the burst and the values measured
    snapshot: object = None  # the last frame read, for an audit snapshot of a refusal


def watch_for_blink(rgb_frames, ratio=0.65, min_closed=2, max_closed=12,
                    min_face_height=80, detect_width=320):
    """Read RGB frames until a blink is complete, measuring eye openness on each frame.

    Returns a Watch; reading stops right after the frame where the eyes reopen.
    """
    values, problems, rgb = [], {}, None
    recent = deque(maxlen=max_closed + 2)  # enough to reach back to the frame before a blink
    for i, rgb in enumerate(rgb_frames):
        box, problem, _ = faces.find_single_face(rgb, min_face_height, detect_width, quick=True)
        if problem:
            problems[problem] = problems.get(problem, 0) + 1
            values.append(None)
            continue
        values.append(openness(faces.face_landmarks(rgb, box)))
        recent.append((i, rgb))
        blink = find_blink(values, ratio, min_closed, max_closed)
        if blink:
            kept = dict(recent)
            return Watch((kept[blink.before], kept[blink.deepest], kept[blink.after]), None, i + 1, blink, rgb)
    # Mostly a face and no blink: ask for one; mostly no usable face: say what was wrong.
    faced = sum(v is not None for v in values)
    reason = "no_blink" if faced > sum(problems.values()) else max(problems, key=problems.get, default="no_face")
    return Watch((), reason, len(values), None, rgb)
