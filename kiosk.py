"""The kiosk camera in the pages: live preview, photo capture for registration, login frames.

CAMERA_MODE "server" reads the camera on this machine (CAMERA_SOURCE); "browser"
takes the pictures in the kiosk's browser, which posts them as JPEG files. Either
way the same checks and decisions follow; a request of the other mode is refused.
"""

import ipaddress
import os
import re
import time
import uuid
from contextlib import contextmanager

from flask import (Blueprint, Response, current_app, flash, g, redirect, render_template, request,
                   send_file, session, url_for)
from flask_wtf import FlaskForm

import faces
import preview
from camera import CameraError, get_camera
from enroll import EnrollError, register_user
from forms import ActionForm, RegisterForm, first_error

bp = Blueprint("kiosk", __name__)

MAX_FRAME_PIXELS = 1920 * 1440  # a webcam frame; anything bigger is not one
CAPTURE_MAX_AGE = 600  # seconds an unconfirmed kiosk photo is kept
CAPTURE_NAME = re.compile(r"[0-9a-f]{32}")
NEEDS_BROWSER = ("This kiosk takes pictures in the browser, not with a server camera - "
                 "allow camera access (JavaScript is needed) or use the other option")
NEEDS_SERVER = "This kiosk uses its own camera - pictures sent by the browser are not accepted"
NO_SERVER_CAMERA = "The camera is in the kiosk browser here (CAMERA_MODE=browser): there is no server camera to show"
NOT_ALLOWED = "The camera view is shown only on the kiosk itself and to administrators"


class CaptureRefused(CameraError):
    """Pictures that do not fit CAMERA_MODE, or are not pictures; `status` is the HTTP status."""

    def __init__(self, message, status):
        Exception.__init__(self, message)
        self.reason, self.status = "refused", status


class CaptureRegisterForm(FlaskForm):
    """Username and password for the photo just taken at the kiosk."""

    username = RegisterForm.username
    password = RegisterForm.password


def browser_mode():
    """Return True if the kiosk browser takes the pictures (CAMERA_MODE=browser)."""
    return current_app.config["CAMERA_MODE"] == "browser"


def may_preview():
    """Return True if this client may watch the kiosk camera: the kiosk itself or an admin."""
    try:
        local = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        local = False
    return local or bool(g.get("user") is not None and g.user.is_admin)


def decode_frame(storage):
    """Decode one posted camera frame into RGB, or raise CaptureRefused."""
    try:
        return faces.read_image(storage.read(), MAX_FRAME_PIXELS)
    except faces.ImageError as e:
        raise CaptureRefused(f"A camera picture could not be read: {e}", 400) from e


def posted_frames(browser):
    """Return the posted `frame` files; refuse them, or their absence, when they do not fit the mode."""
    posted = [f for f in request.files.getlist("frame") if f.filename]
    if browser and not posted:
        raise CaptureRefused(NEEDS_BROWSER, 409)
    if posted and not browser:
        raise CaptureRefused(NEEDS_SERVER, 409)
    return posted


@contextmanager
def login_frames(count=None):
    """Give up to `count` (default CAMERA_FRAMES) RGB frames: from the server camera or the kiosk browser."""
    cfg = current_app.config
    count = count or cfg["CAMERA_FRAMES"]
    posted = posted_frames(browser_mode())
    if posted:
        yield [decode_frame(f) for f in posted[:count]]
        return
    with get_camera(cfg["CAMERA_SOURCE"]).burst(count, cfg["CAMERA_TIMEOUT"]) as frames:
        yield (faces.frame_to_rgb(f) for f in frames)


def take_photo():
    """Return one picture as JPEG bytes: a server camera frame, or the posted one in browser mode."""
    cfg = current_app.config
    posted = posted_frames(browser_mode())
    if posted:
        return faces.encode_jpeg(decode_frame(posted[0]))
    with get_camera(cfg["CAMERA_SOURCE"]).burst(1, cfg["CAMERA_TIMEOUT"]) as frames:
        frame = next(frames, None)
    if frame is None:
        raise CameraError("no_frames")
    return faces.encode_jpeg(faces.frame_to_rgb(frame))


@bp.get("/camera/stream")
def stream():
    """Stream the kiosk camera as MJPEG with the face box and a hint, to the kiosk and to admins."""
    if not may_preview():
        return render_template("error.html", error=NOT_ALLOWED), 403
    if browser_mode():
        return render_template("error.html", error=NO_SERVER_CAMERA), 409
    cfg = current_app.config
    parts = preview.mjpeg_parts(get_camera(cfg["CAMERA_SOURCE"]), cfg["CAMERA_TIMEOUT"],
                          cfg["DETECT_WIDTH"], cfg["MIN_FACE_HEIGHT"])
    return Response(parts, mimetype="multipart/x-mixed-replace; boundary=frame",
                    headers={"Cache-Control": "no-store"})


# --- registration with a kiosk photo ------------------------------------------------------

def _capture_folder():
    """Return the folder of unconfirmed kiosk photos, created if needed."""
    folder = os.path.join(current_app.config["UPLOAD_FOLDER"], "captures")
    os.makedirs(folder, exist_ok=True)
    return folder


def _captured_path():
    """Return the path of this session's kiosk photo, or None if there is none on disk."""
    name = session.get("capture")
    if not (isinstance(name, str) and CAPTURE_NAME.fullmatch(name)):
        return None
    path = os.path.join(_capture_folder(), f"{name}.jpg")
    return path if os.path.isfile(path) else None


def _discard_capture():
    """Delete this session's kiosk photo, and any other left longer than CAPTURE_MAX_AGE."""
    path = _captured_path()
    if path:
        os.remove(path)
    session.pop("capture", None)
    folder, cutoff = _capture_folder(), time.time() - CAPTURE_MAX_AGE
    for entry in os.scandir(folder):
        if entry.stat().st_mtime < cutoff:
            os.remove(entry.path)


@bp.post("/register/capture")
def capture():
    """Take a photo for registration and keep it, server-side, until the person confirms it."""
    if not ActionForm().validate_on_submit():
        return redirect(url_for("auth.register"))
    try:
        jpeg = take_photo()
    except CameraError as e:
        error = str(e)
        return render_template("register.html", form=RegisterForm(), error=error), getattr(e, "status", 503)
    _discard_capture()
    name = uuid.uuid4().hex
    with open(os.path.join(_capture_folder(), f"{name}.jpg"), "wb") as f:
        f.write(jpeg)
    session["capture"] = name
    return redirect(url_for("kiosk.confirm"))


@bp.route("/register/camera", methods=("GET", "POST"))
def confirm():
    """Show the kiosk photo; a POST registers the person with it."""
    path = _captured_path()
    if path is None:
        flash("Take a photo first - or upload one.")
        return redirect(url_for("auth.register"))
    form = CaptureRegisterForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("register_camera.html", form=form, error=first_error(form)), status
    try:
        user = register_user(form.username.data, form.password.data, path)
    except EnrollError as e:
        return render_template("register_camera.html", form=form, error=str(e)), e.status
    _discard_capture()
    flash(f"Welcome, {user.username}! You can now log in by looking at the camera.")
    return redirect(url_for("auth.login"))


@bp.get("/register/camera/photo")
def captured_photo():
    """Serve this session's unconfirmed kiosk photo, to this session only."""
    path = _captured_path()
    if path is None:
        return render_template("error.html", error="There is no photo to show"), 404
    return send_file(path, mimetype="image/jpeg", max_age=0)


@bp.post("/register/camera/discard")
def discard():
    """Throw the kiosk photo away and go back to the registration page."""
    if ActionForm().validate_on_submit():
        _discard_capture()
    return redirect(url_for("auth.register"))


def template_context():
    """Give every page the camera mode and whether it may show the live preview."""
    return {"camera_mode": current_app.config["CAMERA_MODE"], "can_preview": may_preview()}


def init_app(app):
    """Check CAMERA_MODE, and register the blueprint and the page context."""
    app.config.setdefault("CAMERA_MODE", "server")
    if app.config["CAMERA_MODE"] not in ("server", "browser"):
        raise ValueError(f"CAMERA_MODE must be 'server' or 'browser', not {app.config['CAMERA_MODE']!r}")
    app.register_blueprint(bp)
    app.context_processor(template_context)
