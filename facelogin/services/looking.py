"""What the kiosk camera sees now, for the overlay on the camera view and hands-free login.

The page asks a few times a second: in server camera mode the server reads one frame of its
camera; in browser camera mode the page posts one small frame of its own camera. Either way the
answer comes from the login's own check, so the hint and the login never disagree.
"""

from flask import current_app

from facelogin.engine import limits, preview
from facelogin.engine.camera import CameraError, decode_frame, get_camera

# A login holds the camera for its burst: a look then answers "busy" at once, the page asks again.
CAMERA_WAIT = 0.3
# Looks queue briefly, if at all: the page asks again a moment later anyway.
SLOT_WAIT = 0.5
# The page sends a small frame: a look needs no more, and a bigger one is not a look.
MAX_LOOK_PIXELS = 640 * 480


def look(posted=()):
    """Return the preview.Look of one frame: the server camera's, or the one picture the kiosk browser posted."""
    cfg = current_app.config
    browser = cfg["CAMERA_MODE"] == "browser"
    if browser and not posted:
        raise CameraError("needs_browser")
    if posted and not browser:
        raise CameraError("needs_server")
    # Looks have slots of their own: a page asking several times a second never delays a login's pictures.
    with limits.Slots(cfg["MAX_CONCURRENT_DECODES"], SLOT_WAIT, "look").hold():
        if browser:
            frame = decode_frame(posted[0](), MAX_LOOK_PIXELS)
        else:
            with get_camera(cfg["CAMERA_SOURCE"]).burst(1, CAMERA_WAIT) as frames:
                frame = next(frames, None)
            if frame is None:
                raise CameraError("no_frames")
        return preview.look(frame, cfg["DETECT_WIDTH"], cfg["MIN_FACE_HEIGHT"])
