"""The kiosk camera's live preview (MJPEG with the face box and a hint), for a registered kiosk or an admin."""

from flask import Blueprint, Response, abort, current_app

from facelogin.engine import preview
from facelogin.engine.camera import get_camera
from facelogin.services.sessions import may_watch_camera

bp = Blueprint("camera", __name__, url_prefix="/camera")
NOT_ALLOWED = "The camera view is shown only on a registered kiosk and to administrators"
NO_SERVER_CAMERA = "The camera is in the kiosk browser here (CAMERA_MODE=browser): there is no server camera to show"


@bp.get("/stream")
def stream():
    """Stream the kiosk camera as MJPEG with the face box and a hint."""
    if not may_watch_camera():
        abort(403, NOT_ALLOWED)
    cfg = current_app.config
    if cfg["CAMERA_MODE"] == "browser":
        abort(409, NO_SERVER_CAMERA)
    parts = preview.mjpeg_parts(
        get_camera(cfg["CAMERA_SOURCE"]), cfg["CAMERA_TIMEOUT"], cfg["DETECT_WIDTH"], cfg["MIN_FACE_HEIGHT"]
    )
    return Response(parts, mimetype="multipart/x-mixed-replace; boundary=frame", headers={"Cache-Control": "no-store"})
