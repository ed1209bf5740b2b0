"""Face login: a burst from the kiosk camera, decided against the gallery."""

from flask import current_app

import faces
from camera import get_camera
from gallery import get_gallery

FACE_MESSAGES = {
    "not_recognised": "Face not recognised - try again, or log in with your password",
    "no_face": "No face seen - stand in front of the camera and look at it",
    "dark": "No face seen - it is too dark here; face the light",
    "too_small": "No face seen - please step closer to the camera",
    "many_faces": "One person at a time, please - we saw more than one face",
}


def face_login(index=None):
    """Capture a burst from CAMERA_SOURCE and decide it against `index` (default: everyone).

    Returns a faces.Decision; a CameraError passes up to the caller.
    """
    cfg = current_app.config
    index = get_gallery().index() if index is None else index
    camera = get_camera(cfg["CAMERA_SOURCE"])
    with camera.burst(cfg["CAMERA_FRAMES"], cfg["CAMERA_TIMEOUT"]) as frames:
        return faces.decide_burst(
            (faces.frame_to_rgb(f) for f in frames), index,
            tolerance=cfg["FACE_TOLERANCE"], margin=cfg["FACE_MARGIN"],
            consensus=cfg["FACE_CONSENSUS"], min_face_height=cfg["MIN_FACE_HEIGHT"],
            detect_width=cfg["DETECT_WIDTH"],
        )
