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

import cv2
import numpy as np

from facelogin.engine import faces

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


def watch_for_blink(rgb_frames, ratio=0.65, min_closed=2, max_closed=12, min_face_height=80, detect_width=320):
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


# --- Challenge liveness: a requested head movement, measured in 3D ---------------------------------

CHALLENGES = ("left", "right", "up", "down")
# (yaw, pitch) sign of each challenge: the person's own left takes the nose to the right of the raw,
# unmirrored camera image (+yaw); tilting the head back is +pitch.
CHALLENGE_AXES = {"left": (0, 1), "right": (0, -1), "up": (1, 1), "down": (1, -1)}

# A generic head in millimetres, camera axes (x right, y down, z away from the camera), nose tip at
# the origin, facing the camera: the widely used six-point model plus the inner eye corners and the
# base of the nose, which steady pitch. Indices are dlib's.
MODEL_POINTS = {
    30: (0.0, 0.0, 0.0),  # nose tip
    8: (0.0, 63.6, 12.5),  # chin
    36: (-43.3, -32.7, 26.0),  # outer eye corner, image left
    45: (43.3, -32.7, 26.0),  # outer eye corner, image right
    39: (-14.5, -31.0, 21.0),  # inner eye corners
    42: (14.5, -31.0, 21.0),
    48: (-28.9, 28.9, 24.1),  # mouth corners
    54: (28.9, 28.9, 24.1),
    33: (0.0, 14.0, 12.0),  # base of the nose
}
_MODEL_IDS = list(MODEL_POINTS)
_MODEL = np.array([MODEL_POINTS[i] for i in _MODEL_IDS], dtype=np.float64)


def head_pose(landmarks, frame_shape):
    """Return (yaw, pitch, roll) in degrees of a face's 68 dlib landmarks in a frame of `frame_shape`.

    Positive yaw: the person turned to their own left (nose towards the right of the
    unmirrored image); positive pitch: head tilted back (nose up); positive roll: the
    head leant so its eye line turns clockwise in the image. Angles are from cv2.solvePnP
    on a generic head with focal length = frame width, so they carry a per-face offset
    (pitch most): compare poses of one face rather than trusting absolute values.
    """
    h, w = frame_shape[:2]
    camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    image = np.asarray(landmarks, dtype=np.float64)[_MODEL_IDS]
    # Start from a face looking at the camera from ~60 cm: the iterative solver then lands in
    # the right minimum instead of the mirrored pose it sometimes finds unaided.
    rvec, tvec = np.zeros((3, 1)), np.array([[0.0], [0.0], [600.0]])
    ok, rvec, tvec = cv2.solvePnP(
        _MODEL, image, camera, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    rot = cv2.Rodrigues(rvec)[0]
    # The face's outward direction (model -z) decides yaw and pitch: no Euler-order ambiguity.
    out = rot @ np.array([0.0, 0.0, -1.0])
    across = rot @ np.array([1.0, 0.0, 0.0])
    yaw = np.degrees(np.arctan2(out[0], -out[2]))
    pitch = np.degrees(np.arctan2(-out[1], np.hypot(out[0], out[2])))
    roll = np.degrees(np.arctan2(across[1], across[0]))
    return float(yaw), float(pitch), float(roll)


def eye_distance(landmarks):
    """Return the distance between the outer eye corners of 68 dlib landmarks."""
    p = np.asarray(landmarks, dtype=np.float64)
    return float(np.linalg.norm(p[45] - p[36]))


def _homography_residuals(points_a, points_b, fit):
    """Return the residual vectors of every point after the least-squares homography of the `fit` points."""
    a, b = np.asarray(points_a, np.float64), np.asarray(points_b, np.float64)
    hm, _ = cv2.findHomography(a[fit], b[fit], 0)  # 0: plain least squares, every point counts
    if hm is None:
        return np.full_like(b, np.inf)
    return b - cv2.perspectiveTransform(a[None], hm)[0]


def flatness(points_a, points_b):
    """Return the median distance of the 68 landmarks from the best homography a -> b, over the eye distance."""
    # A picture moved as a flat sheet maps all its points by one homography: only landmark
    # noise remains (~0.01). A real head moves its nose against its outline and leaves more.
    res = _homography_residuals(points_a, points_b, slice(None))
    return float(np.median(np.linalg.norm(res, axis=1)) / eye_distance(points_b))


_FACE_PLANE = np.r_[0:27, 36:68]  # outline, brows, eyes, mouth: everything but the nose
_NOSE_TIP = np.r_[29:36]  # lower nose and nostrils: the points furthest in front of that plane
_NOSE_WAY = {"left": (1.0, 0.0), "right": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


def parallax(points_a, points_b, challenge):
    """Return how far the nose moved beyond the face's best homography a -> b, towards `challenge`, over eye distance.

    A real head turned to its left carries its nose tip further right in the image
    than the plane of its eyes, mouth and outline; a flat picture cannot (noise only,
    either sign). Signed, so noise in the wrong direction counts against a pass.
    """
    res = _homography_residuals(points_a, points_b, _FACE_PLANE)
    return float(res[_NOSE_TIP].mean(axis=0) @ np.array(_NOSE_WAY[challenge]) / eye_distance(points_b))


_NOSE_REGION = np.r_[27:36]  # the nose from its bridge to its nostrils


def texture_parallax(start, end, points, challenge, min_nose=3, min_rest=8):
    """Return how far the nose's texture moved beyond the rest of the face's, towards `challenge`, over eye distance.

    `start` and `end` are texture points tracked from the start frame to the peak
    (track_texture()), `points` the start frame's 68 landmarks. A homography is fitted
    to the points off the nose, and the measure is the median displacement of the points
    on the nose beyond it, along the asked direction. Like parallax(), but on the skin's
    own texture: dlib only outlines the nose on the near-frontal start frame, where it
    fits well, and cannot bend the result by re-fitting a foreshortened photo at the
    peak. None when fewer than `min_nose` points on the nose or `min_rest` off it survived.
    """
    centre = points[[30, 31, 33, 35]].mean(axis=0)
    nose = cv2.convexHull(((points[_NOSE_REGION] - centre) * 1.3 + centre).astype(np.float32))
    on_nose = np.array([cv2.pointPolygonTest(nose, (float(x), float(y)), False) >= 0 for x, y in start], bool)
    if on_nose.sum() < min_nose or (~on_nose).sum() < min_rest:
        return None
    res = _homography_residuals(start, end, ~on_nose)
    return float(np.median(res[on_nose] @ np.array(_NOSE_WAY[challenge])) / eye_distance(points))


def face_patch(rgb, points, margin=0.3):
    """Return ((x, y) offset, grey crop) of the face around its landmarks, `margin` face sizes wider each side."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin * float((hi - lo).max())
    h, w = rgb.shape[:2]
    x0, y0 = max(int(lo[0] - pad), 0), max(int(lo[1] - pad), 0)
    x1, y1 = min(int(hi[0] + pad) + 1, w), min(int(hi[1] + pad) + 1, h)
    return np.array([x0, y0], np.float32), cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)


# Pyramidal Lucas-Kanade: 15 px windows, 3 levels, at most 20 iterations or 0.03 px (COUNT | EPS).
_LK = {"winSize": (15, 15), "maxLevel": 2, "criteria": (3, 20, 0.03)}


def track_texture(patches, points, shrink=0.8, max_points=200, max_fb=0.5):
    """Track the face's texture through `patches` (face_patch() of consecutive frames, the start first).

    Corners are picked inside the convex hull of the start frame's landmarks `points`
    shrunk by `shrink` about their centre (no hair, background or face edge), then
    followed frame to frame with pyramidal Lucas-Kanade; a point is dropped as soon as
    tracking it back lands more than `max_fb` px from where it came from. Returns
    (start, end): the surviving points in the first and the last frame, image coordinates.
    """
    empty = np.empty((0, 2), np.float32)
    off0, grey0 = patches[0]
    centre = points.mean(axis=0)
    hull = cv2.convexHull(((points - centre) * shrink + centre - off0).round().astype(np.int32))
    mask = np.zeros_like(grey0)
    cv2.fillConvexPoly(mask, hull, 255)
    gap = max(3.0, eye_distance(points) / 15)  # corners at least this far apart
    found = cv2.goodFeaturesToTrack(grey0, max_points, 0.01, gap, mask=mask, blockSize=5)
    if found is None:
        return empty, empty
    start = found.reshape(-1, 2) + off0
    cur = start.copy()
    for (off_a, grey_a), (off_b, grey_b) in zip(patches, patches[1:]):
        # The two frames' patches differ a little in place and size: follow within their overlap.
        lo = np.maximum(off_a, off_b)
        hi = np.minimum(off_a + grey_a.shape[::-1], off_b + grey_b.shape[::-1])
        if np.any(hi - lo < 32):
            return empty, empty
        grey_a, grey_b = (
            np.ascontiguousarray(g[int(lo[1] - o[1]) : int(hi[1] - o[1]), int(lo[0] - o[0]) : int(hi[0] - o[0])])
            for o, g in ((off_a, grey_a), (off_b, grey_b))
        )
        a = (cur - lo).reshape(-1, 1, 2).astype(np.float32)
        b, ok, _ = cv2.calcOpticalFlowPyrLK(grey_a, grey_b, a, a.copy(), flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **_LK)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(
            grey_b, grey_a, b, a.copy(), flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **_LK
        )
        keep = (ok.ravel() == 1) & (ok_back.ravel() == 1) & (np.linalg.norm((back - a).reshape(-1, 2), axis=1) < max_fb)
        start, cur = start[keep], b.reshape(-1, 2)[keep] + lo
        if not len(cur):
            return empty, empty
    return start, cur


class Movement(NamedTuple):
    """What a challenge burst showed: frames for the identity check (empty unless passed) and why not."""

    frames: tuple  # (start, peak) RGB arrays when the movement passed, else ()
    reason: str | None  # None, "no_movement", "wrong_way", "flat", "jump", "not_frontal" or a face problem
    seen: int  # frames read
    measures: dict  # numbers for the audit and the evaluation: poses, parallax, flatness, texture, steps
    snapshot: object = None  # the last frame read


class _Seen(NamedTuple):
    """One tracked frame."""

    index: int
    rgb: object
    points: object
    pose: tuple  # (yaw, pitch, roll)
    patch: tuple  # face_patch(): the face in grey, for the texture check


def spread(landmarks):
    """Return the RMS distance of the landmarks from their centroid: a steadier face size than any one span."""
    p = np.asarray(landmarks, dtype=np.float64)
    return float(np.sqrt(((p - p.mean(axis=0)) ** 2).sum(axis=1).mean()))


def _step(prev, cur):
    """Return how far the face moved from `prev` to `cur`: shift (face sizes), size ratio, turn (degrees)."""
    size = spread(prev.points)
    return {
        "shift": float(np.linalg.norm(cur.points.mean(axis=0) - prev.points.mean(axis=0))) / size,
        "scale": spread(cur.points) / size,
        "turn": max(abs(cur.pose[0] - prev.pose[0]), abs(cur.pose[1] - prev.pose[1])),
    }


def _picture_of_highest(peak, sign, axis):
    """Return `peak` with the RGB picture kept by its highest frame only: a long movement must not hold every frame."""
    highest = max(peak, key=lambda s: sign * s.pose[axis])  # the first of equals, as sorted() keeps them
    return [s if s is highest or s.rgb is None else s._replace(rgb=None) for s in peak]


def watch_for_challenge(
    rgb_frames,
    challenge,
    *,
    min_yaw=10.0,
    min_pitch=8.0,
    min_depth=0.025,
    min_depth_pitch=0.04,
    min_texture=0.008,
    max_start_yaw=15.0,
    max_start_pitch=25.0,
    start_frames=4,
    confirm=2,
    settle=2,
    max_shift=0.4,
    max_scale=1.4,
    max_turn=20.0,
    max_gap=3,
    min_face_height=80,
    detect_width=320,
):
    """Read RGB frames until the head has moved as `challenge` asks (one of CHALLENGES), or they run out.

    Only detection and landmarks run per frame. The start pose is the median of
    `start_frames` steady, near-frontal frames; the movement is proven once the yaw
    (left/right, `min_yaw`) or pitch (up/down, `min_pitch`) has changed the asked way
    for `confirm` frames, and reading stops `settle` frames after it stops growing.
    It then passes if the nose moved against the face plane twice over: its landmarks
    (`parallax` >= `min_depth` for a turn, `min_depth_pitch` for a tilt) and its skin's
    texture tracked from the start to the peak (`texture_parallax` >= `min_texture`,
    default 0.008 of the eye distance), and the face was tracked without a jump
    throughout. Returns a Movement; measures["texture"] holds the texture parallax.
    """
    if challenge not in CHALLENGE_AXES:
        raise ValueError(f"unknown challenge {challenge!r}")
    axis, sign = CHALLENGE_AXES[challenge]
    need = (min_yaw, min_pitch)
    # The other axis may drift with the asked one (a turn dips the head a little, and pose
    # noise couples them): only a clearly larger cross movement counts as the wrong way.
    cross_need = 1.5 * need[1 - axis]
    problems, measures = {}, {}
    start, peak, prev, gap, reached, wrong = None, [], None, 0, 0, 0
    moving = []  # (index, patch) of every frame with a face since the start: small grey crops only
    steady = deque(maxlen=start_frames)
    best, since_best, rgb, seen, reason = -np.inf, 0, None, 0, None
    max_step = {"shift": 0.0, "scale": 1.0, "turn": 0.0}  # the largest accepted frame-to-frame steps

    for seen, rgb in enumerate(rgb_frames, 1):
        box, problem, _ = faces.find_single_face(rgb, min_face_height, detect_width, quick=True)
        if problem:
            problems[problem] = problems.get(problem, 0) + 1
            gap += 1
            if gap > max_gap:  # the face was lost: whatever follows must start afresh
                start, prev, peak, reached, best = None, None, [], 0, -np.inf
                steady.clear()
                moving.clear()
            continue
        points = faces.face_landmarks(rgb, box)
        cur = _Seen(seen - 1, rgb, points, head_pose(points, rgb.shape), face_patch(rgb, points))
        if prev is not None:
            step = _step(prev, cur)
            # Faster than any head moves between two frames (allowing for frames without a face):
            # another face took this one's place.
            jumped = (
                step["shift"] > max_shift * (gap + 1)
                or not 1 / max_scale <= step["scale"] <= max_scale
                or step["turn"] > max_turn * (gap + 1)
            )
            if jumped and start is not None:
                measures["jump"] = {k: round(v, 4) for k, v in step.items()}
                reason = "jump"
                break
            if jumped:  # another face before the movement began: start again with this one
                steady.clear()
            else:
                step["scale"] = max(step["scale"], 1 / step["scale"])
                for k in max_step:
                    max_step[k] = max(max_step[k], step[k])
        prev, gap = cur, 0
        if start is None:
            steady.append(cur)
            if len(steady) == start_frames:
                poses = np.array([s.pose for s in steady])
                centre = np.median(poses, axis=0)
                # Steady (spread within the pose noise) and near frontal: that is the start.
                if (
                    np.ptp(poses[:, 0]) < 10
                    and np.ptp(poses[:, 1]) < 10
                    and abs(centre[0]) <= max_start_yaw
                    and abs(centre[1]) <= max_start_pitch
                ):
                    start = (tuple(float(v) for v in centre[:2]), list(steady))
                    measures["start_pose"] = [round(float(v), 1) for v in centre]
            continue
        moving.append((cur.index, cur.patch))
        moved = np.subtract(cur.pose[:2], start[0])
        progress = sign * moved[axis]
        astray = reached == 0 and (progress <= -need[axis] or abs(moved[1 - axis]) >= cross_need)
        wrong = wrong + 1 if astray else 0
        if wrong >= confirm:  # one noisy pose is not an answer either way
            measures["wrong_pose"] = [round(float(v), 1) for v in moved]
            reason = "wrong_way"
            break
        if reached < confirm:
            reached = reached + 1 if progress >= need[axis] else 0
            peak = _picture_of_highest(peak + [cur], sign, axis) if reached else []
            if reached < confirm:
                continue
        else:
            peak = _picture_of_highest(peak + [cur], sign, axis)
        if progress > best:
            best, since_best = progress, 0
        else:
            since_best += 1
            if since_best >= settle:
                break
    else:
        if start is None:
            faced = seen - sum(problems.values())
            reason = "not_frontal" if faced >= start_frames else max(problems, key=problems.get, default="no_face")
        elif reached < confirm:
            reason = "no_movement"
    measures.update({"max_" + k: round(v, 4) for k, v in max_step.items()})
    if reason is not None:
        return Movement((), reason, seen, measures, rgb)
    # The decision rests on the movement's highest frames against the averaged start.
    # Landmarks averaged over the start frames and over the movement's highest frames: dlib's
    # jitter (worst on glasses) halves, while the geometry of the two poses stays.
    top = sorted(peak, key=lambda s: sign * s.pose[axis], reverse=True)[:4]
    origin = np.mean([s.points for s in start[1]], axis=0)
    summit = np.mean([s.points for s in top], axis=0)
    depth = parallax(origin, summit, challenge)
    peak_pose = top[0].pose
    # The skin's texture, followed from the last start frame to the peak frame, tells depth without dlib's fit.
    base = start[1][-1]
    tracked = track_texture([base.patch] + [p for i, p in moving if i <= top[0].index], base.points)
    texture = texture_parallax(*tracked, base.points, challenge)
    measures.update(
        {
            "peak_pose": [round(float(v), 1) for v in peak_pose],
            "moved": round(float(sign * (peak_pose[axis] - start[0][axis])), 1),
            "parallax": round(depth, 4),
            "flatness": round(flatness(origin, summit), 4),
            "texture": None if texture is None else round(texture, 4),
            "tracked": len(tracked[0]),
        }
    )
    # Thresholds measured on rendered movements and flat sheets (tests/engine/test_liveness.py):
    # 20-25 degree turns gave 0.027-0.075 against <= 0.01 for sheets turned 30-35 degrees; 15-18 degree
    # tilts gave >= 0.046, but a sheet tilted back squashes the face and dlib then bends its nose
    # landmarks as on a real tilt (up to 0.064 on Grace's photo): landmarks alone cannot refuse it.
    # The texture does not depend on dlib's fit: 51 genuine clips (2 people, 4 directions, 15-25
    # degrees) gave 0.016-0.061, 39 sheets that faked the pose (25-35 degrees) -0.005-0.0034, and
    # 0.003 at most for Grace's sheet tilted back 25-35 degrees (16 clips). Unmeasurable counts as flat.
    if depth < (min_depth if axis == 0 else min_depth_pitch) or texture is None or texture < min_texture:
        return Movement((), "flat", seen, measures, rgb)
    first = min(start[1], key=lambda s: abs(s.pose[0]))
    return Movement((first.rgb, top[0].rgb), None, seen, measures, rgb)
