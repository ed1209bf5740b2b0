"""The kiosk camera's live preview: frames with the face box and a hint, as an MJPEG stream.

Nothing here knows Flask; views/camera.py serves the stream.
"""

import math
import threading
import time

import cv2
import numpy as np

from facelogin.engine import faces
from facelogin.engine.camera import CameraError

FPS = 8
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


def annotate(frame, detect_width, min_face_height):
    """Return the BGR frame as RGB with the face boxes and the hint drawn on it, and the hint."""
    rgb = faces.frame_to_rgb(frame)
    # The login's own check (faces.check_faces, as decide_burst calls it): "Ready" means a login can go on.
    check, boxes = faces.check_faces(rgb, min_face_height, detect_width, quick=True)
    said = HINTS[check.problem]
    colour = (40, 200, 90) if said == "Ready" else (255, 190, 0)
    scale = rgb.shape[1] / 640
    for top, right, bottom, left in boxes:
        cv2.rectangle(rgb, (left, top), (right, bottom), colour, max(2, round(4 * scale)))
    _caption(rgb, said, colour)
    return rgb, said


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


def mjpeg_parts(camera, timeout, detect_width, min_face_height, fps=FPS, seconds=math.inf, allowed=lambda: True):
    """Yield multipart JPEG parts of annotated camera frames, at most `fps` a second.

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
            rgb = notice("No picture") if frame is None else annotate(frame, detect_width, min_face_height)[0]
        except CameraError as e:
            rgb = notice("Camera busy" if e.reason == "busy" else "Camera unavailable")
        yield _part(rgb)
        time.sleep(max(0.0, 1.0 / fps - (time.monotonic() - started)))
