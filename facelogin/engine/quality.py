"""The quality gate for enrolment photos: pose, sharpness, open eyes and even light on the face.

An enrolment template is compared with every later login, so a turned, blurred,
eyes-closed or half-shadowed photo costs its owner logins for as long as it is kept.
Measures come from dlib's 68 landmarks and the face's own pixels, scaled to the
face so that they do not depend on the photo's resolution. Login frames are never
gated. Pure: RGB arrays and numbers in, numbers out; nothing here knows Flask.
"""

from typing import NamedTuple

import cv2
import numpy as np

from facelogin.engine import liveness

STANDARD_FACE = 150  # px: dlib encodes a 150 px face chip, so blur finer than this scale does not matter
NOSE_TIP, CHIN, JAW_LEFT, JAW_RIGHT = 30, 8, 0, 16
EYES = slice(36, 48)
FRONTAL_NOSE = 0.33  # the nose tip's height between the eyes and the chin on the frontal fixture faces


class Measures(NamedTuple):
    """What the gate measured on one face."""

    yaw: float  # nose offset from the middle of the jaw, in half jaw widths (0 frontal, 1 at the jaw's edge)
    pitch: float  # how far the nose sits from a frontal face's FRONTAL_NOSE, in eye-to-chin heights
    sharpness: float  # share of the face's Laplacian variance (at STANDARD_FACE px) that a 1 px blur removes
    openness: float  # liveness.openness: eye aspect ratio over face aspect
    shadow: float  # mean of the darker half of the face over the brighter half (1 = even light)


class Bars(NamedTuple):
    """The gate's limits; a measure outside its bar refuses the photo."""

    max_yaw: float = 0.85
    max_pitch: float = 0.17
    min_sharpness: float = 0.6
    min_openness: float = 0.2
    min_shadow: float = 0.5


# Checked in this order: the first one failed is what the person is asked to change.
PROBLEMS = ("turned", "blurred", "eyes_closed", "shadow")


def measure(rgb, box, landmarks):
    """Return the Measures of the face in `box` with its 68 landmarks, on an RGB image."""
    p = np.asarray(landmarks, dtype=np.float64)
    jaw_mid = (p[JAW_LEFT] + p[JAW_RIGHT]) / 2
    across = p[JAW_RIGHT] - p[JAW_LEFT]
    half_width = np.linalg.norm(across) / 2 or 1.0
    unit = across / (2 * half_width)
    yaw = float(abs((p[NOSE_TIP] - jaw_mid) @ unit) / half_width)
    eyes = p[EYES].mean(axis=0)
    down = np.array([-unit[1], unit[0]])  # perpendicular to the jaw line, towards the chin
    height = (p[CHIN] - eyes) @ down or 1.0
    pitch = float(abs((p[NOSE_TIP] - eyes) @ down / height - FRONTAL_NOSE))
    grey = cv2.cvtColor(_face(rgb, box), cv2.COLOR_RGB2GRAY)
    return Measures(yaw, pitch, _sharpness(grey), liveness.openness(p) or 0.0, _shadow(grey))


def _face(rgb, box):
    """Return the face box's pixels, scaled so the box is STANDARD_FACE px tall."""
    top, right, bottom, left = box
    crop = rgb[max(0, top) : bottom, max(0, left) : right]
    scale = STANDARD_FACE / max(1, crop.shape[0])
    size = (max(1, round(crop.shape[1] * scale)), STANDARD_FACE)
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _sharpness(grey):
    """Return the share of the Laplacian's variance that blurring by 1 px removes: ~0.85 sharp, ~0.55 blurred."""
    # The Laplacian's variance alone also grows with contrast and skin texture (a sharp, softly lit
    # fixture face scored below a blurred, contrasted one); how much of it one more pixel of blur
    # takes away depends on the detail only.
    g = grey.astype(np.float64)
    fine = cv2.Laplacian(g, cv2.CV_64F).var()
    coarse = cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 1.0), cv2.CV_64F).var()
    return float(1.0 - coarse / fine) if fine > 0 else 0.0


def _shadow(grey):
    """Return the mean of the darker half of the face (left or right) over the brighter half."""
    h, w = grey.shape
    inner = grey[h // 5 : h - h // 10, w // 8 : w - w // 8].astype(np.float64)  # cheeks and eyes, not the edges
    left, right = inner[:, : inner.shape[1] // 2].mean(), inner[:, inner.shape[1] // 2 :].mean()
    return float(min(left, right) / max(left, right, 1.0))


def problem(m, bars=Bars()):
    """Return the first of PROBLEMS that the Measures `m` show against `bars`, or None if the photo is good."""
    if m.yaw > bars.max_yaw or m.pitch > bars.max_pitch:
        return "turned"
    if m.sharpness < bars.min_sharpness:
        return "blurred"
    if m.openness < bars.min_openness:
        return "eyes_closed"
    if m.shadow < bars.min_shadow:
        return "shadow"
    return None
