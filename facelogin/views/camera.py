"""The kiosk camera for a registered kiosk or an admin: the live preview (MJPEG) and a look at what it sees (JSON)."""

from flask import Blueprint, Response, abort, current_app

from facelogin.engine import preview
from facelogin.engine.camera import CameraError, get_camera
from facelogin.forms import posted_pictures
from facelogin.services import looking
from facelogin.services.sessions import camera_permit, may_watch_camera

bp = Blueprint("camera", __name__, url_prefix="/camera")
NOT_ALLOWED = "The camera view is shown only on a registered kiosk and to administrators"
NO_SERVER_CAMERA = "The camera is in the kiosk browser here (CAMERA_MODE=browser): there is no server camera to show"
MJPEG = "multipart/x-mixed-replace; boundary=frame"
TOO_MANY = "{} live camera views are open already - close one, or try again in a moment"


@bp.record_once
def count_streams(state):
    """Give the app its count of open live views: each one holds a server worker while it lasts."""
    state.app.extensions["camera_streams"] = preview.Streams(state.app.config["STREAM_LIMIT"])


@bp.get("/stream")
def stream():
    """Stream the kiosk camera as mirrored MJPEG, for at most STREAM_SECONDS."""
    still_allowed = camera_permit()
    if still_allowed is None:
        abort(403, NOT_ALLOWED)
    cfg = current_app.config
    if cfg["CAMERA_MODE"] == "browser":
        abort(409, NO_SERVER_CAMERA)
    parts = preview.mjpeg_parts(
        get_camera(cfg["CAMERA_SOURCE"]),
        cfg["CAMERA_TIMEOUT"],
        seconds=cfg["STREAM_SECONDS"],
        allowed=still_allowed,
    )
    give_back = current_app.extensions["camera_streams"].take()
    if give_back is None:
        abort(503, TOO_MANY.format(cfg["STREAM_LIMIT"]))
    response = Response(parts, mimetype=MJPEG, headers={"Cache-Control": "no-store"})
    # The server closes the response when the stream ends or the browser goes away (even before
    # the first frame, when a generator's own `finally` would never run).
    response.call_on_close(give_back)
    return response


@bp.route("/look", methods=("GET", "POST"))
def look():
    """Say what the kiosk camera sees now as JSON: the hint and the face boxes (a POST brings the browser's frame)."""
    if not may_watch_camera():
        abort(403, NOT_ALLOWED)
    try:
        seen = looking.look(posted_pictures())
    except CameraError as e:
        return {"problem": e.reason, "hint": str(e), "faces": []}, e.status
    response = current_app.json.response(seen.as_dict())
    response.headers["Cache-Control"] = "no-store"
    return response
