"""Face login: a burst from the kiosk camera (or the kiosk browser), decided against the gallery."""

from flask import current_app

import faces
import kiosk
import liveness
from gallery import get_gallery

FACE_MESSAGES = {
    "not_recognised": "Face not recognised - try again, or log in with your password",
    "no_face": "No face seen - stand in front of the camera and look at it",
    "dark": "No face seen - it is too dark here; face the light",
    "too_small": "No face seen - please step closer to the camera",
    "many_faces": "One person at a time, please - we saw more than one face",
    "no_blink": "Please blink - look at the camera, press the button, then blink once",
}
LIVENESS_MODES = ("off", "blink")
LOGIN_MODES = ("face", "username+face", "face+password")


def init_app(app):
    """Refuse to start with a misspelt LOGIN_MODE or LIVENESS: it must not quietly weaken the login."""
    for key, allowed in (("LOGIN_MODE", LOGIN_MODES), ("LIVENESS", LIVENESS_MODES)):
        if app.config[key] not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {app.config[key]!r}")


def face_login(index=None):
    """Take a burst (CAMERA_SOURCE, or the frames the kiosk browser posted) and decide it against `index`.

    `index` defaults to everyone. Returns a faces.Decision; a CameraError (with a
    `status` when the request's frames do not fit CAMERA_MODE) passes up to the caller.
    """
    cfg = current_app.config
    index = get_gallery().index() if index is None else index
    if cfg["LIVENESS"] == "blink":
        return blink_login(index)
    with kiosk.login_frames() as frames:
        return faces.decide_burst(
            frames, index,
            tolerance=cfg["FACE_TOLERANCE"], margin=cfg["FACE_MARGIN"],
            consensus=cfg["FACE_CONSENSUS"], min_face_height=cfg["MIN_FACE_HEIGHT"],
            detect_width=cfg["DETECT_WIDTH"],
        )


def blink_login(index):
    """Watch for a blink over LIVENESS_FRAMES frames, then decide the frames around it against `index`.

    Only landmarks run until the blink; then the frame before it, its deepest
    frame and the frame after it must all match one person, so one face cannot
    blink while another is matched. Returns a faces.Decision with `liveness` set.
    """
    cfg = current_app.config
    with kiosk.login_frames(cfg["LIVENESS_FRAMES"]) as frames:
        watch = liveness.watch_for_blink(
            frames, ratio=cfg["BLINK_RATIO"], min_closed=cfg["BLINK_MIN_FRAMES"],
            max_closed=cfg["BLINK_MAX_FRAMES"], min_face_height=cfg["MIN_FACE_HEIGHT"],
            detect_width=cfg["DETECT_WIDTH"],
        )
    if not watch.frames:
        return faces.Decision(None, watch.reason, float("inf"), float("nan"), watch.seen, 0,
                              watch.snapshot, liveness="failed")
    decision = faces.decide_burst(
        watch.frames, index, tolerance=cfg["FACE_TOLERANCE"], margin=cfg["FACE_MARGIN"],
        consensus=len(watch.frames), min_face_height=cfg["MIN_FACE_HEIGHT"],
        detect_width=cfg["DETECT_WIDTH"],
    )
    return decision._replace(frames=watch.seen, liveness="passed")
