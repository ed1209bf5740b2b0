"""The kiosk camera's live preview: mirrored frames as an MJPEG stream, and a look at one frame
(the hint and the face boxes) that the page draws over the preview and that starts a hands-free login.

The stream itself stays plain: the page draws the guide oval, the face box and one status line
over it, so what the preview says and what the login answered never disagree.
Nothing here knows Flask; views/camera.py serves both.
"""

import math
import threading
import time
from typing import NamedTuple

import cv2
import numpy as np

from facelogin.engine import faces
from facelogin.engine.camera import CameraError

FPS = 8  # the face check runs on the looks (4 a second), not on every preview frame
ENDED = "Live view paused - reload the page"


class Streams:
    """Count the live views of one process: at most `limit` at once, each slot given back exactly once."""

    def __init__(self, limit):
        """Allow `limit` views at once."""
        self._free = threading.BoundedSemaphore(limit)

    def take(self):
        """Return a function that gives the slot back (once), or None at once when every slot is taken."""
        if not self._free.acquire(blocking=False):
            return None
        given_back = threading.Event()

        def give_back():
            if not given_back.is_set():
                given_back.set()
                self._free.release()

        return give_back


HINTS = {
    "dark": "Too dark - face the light",
    # A face too small for the detector is not found at all, so this covers "too far" too.
    "no_face": "Step closer and look at the camera",
    "many_faces": "One person at a time",
    "too_small": "Move closer",
    None: "Ready",
}


class Look(NamedTuple):
    """What the kiosk camera sees in one frame: the login's problem with it (None: a login can go on),
    the hint for the person, and every face box as (left, top, width, height) fractions of the frame."""

    problem: str | None
    hint: str
    faces: list

    def as_dict(self):
        """Return the look as JSON-ready values."""
        return {"problem": self.problem, "hint": self.hint, "faces": [list(face) for face in self.faces]}


def look(frame, detect_width, min_face_height):
    """Return what the login's own check (faces.check_faces, as decide_burst calls it) sees in a BGR frame."""
    rgb = faces.frame_to_rgb(frame)
    check, boxes = faces.check_faces(rgb, min_face_height, detect_width, quick=True)
    h, w = rgb.shape[:2]
    fractions = [
        (round(left / w, 4), round(top / h, 4), round((right - left) / w, 4), round((bottom - top) / h, 4))
        for top, right, bottom, left in boxes
    ]
    return Look(check.problem, HINTS[check.problem], fractions)


def mirrored(frame):
    """Return the BGR frame as RGB, mirrored: people expect to see themselves as in a mirror."""
    return np.ascontiguousarray(faces.frame_to_rgb(frame)[:, ::-1])


def _caption(rgb, text, colour):
    """Draw `text` in large letters on a dark band along the bottom of the picture."""
    h, w = rgb.shape[:2]
    scale = w / 640
    band = round(56 * scale)
    rgb[h - band :] = (rgb[h - band :] * 0.25).astype(np.uint8)
    cv2.putText(
        rgb,
        text,
        (round(16 * scale), h - round(16 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.2 * scale,
        colour,
        max(2, round(3 * scale)),
        cv2.LINE_AA,
    )


def notice(text):
    """Return a grey camera-sized picture that says `text`."""
    rgb = np.full((480, 640, 3), 70, np.uint8)
    _caption(rgb, text, (255, 255, 255))
    return rgb


def _part(rgb):
    """Return one multipart part holding `rgb` as a JPEG."""
    jpeg = faces.encode_jpeg(rgb, quality=80)
    return b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(jpeg), jpeg)


def mjpeg_parts(camera, timeout, fps=FPS, seconds=math.inf, allowed=lambda: True):
    """Yield multipart JPEG parts of mirrored camera frames, at most `fps` a second.

    The stream ends after `seconds` (with a last picture saying so), and as soon as `allowed()`,
    asked before every frame, is false: nobody keeps watching after losing the right to.
    """
    ends = time.monotonic() + seconds
    while True:
        started = time.monotonic()
        if started >= ends:
            yield _part(notice(ENDED))
            return
        if not allowed():
            return
        try:
            # One frame per burst: the lock is free between frames, so a login can start any time.
            with camera.burst(1, timeout) as frames:
                frame = next(frames, None)
            rgb = notice("No picture") if frame is None else mirrored(frame)
        except CameraError as e:
            rgb = notice("Camera busy" if e.reason == "busy" else "Camera unavailable")
        yield _part(rgb)
        time.sleep(max(0.0, 1.0 / fps - (time.monotonic() - started)))
