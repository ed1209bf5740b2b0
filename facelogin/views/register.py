"""Registration: with a photo file, or with a photo taken by the kiosk camera and confirmed first."""

from flask import Blueprint, flash, redirect, render_template, send_file, url_for

from facelogin.engine.camera import CameraError
from facelogin.forms import AccountForm, RegisterForm, first_error, posted_pictures
from facelogin.services import enrolment
from facelogin.services.capacity import heavy
from facelogin.services.enrolment import EnrollError
from facelogin.services.sessions import NEEDS_KIOSK_FOR_CAMERA, current_device

bp = Blueprint("register", __name__, url_prefix="/register")
WELCOME = "Welcome, {}! You can now log in by looking at the camera."


@bp.route("", methods=("GET", "POST"))
@heavy
def register():
    """Enrol a new user from a username, a password and a face photo."""
    form = RegisterForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("register.html", form=form, error=first_error(form)), status
    try:
        user = enrolment.register_user(form.username.data, form.password.data, form.photo.data)
    except EnrollError as e:
        return render_template("register.html", form=form, error=str(e)), e.status
    flash(WELCOME.format(user.username))
    return redirect(url_for("login.login"))


@bp.post("/capture")
@heavy
def capture():
    """Take a photo for registration and keep it, server-side, until the person confirms it."""
    if current_device() is None:
        return render_template("register.html", form=RegisterForm(), error=NEEDS_KIOSK_FOR_CAMERA), 403
    try:
        enrolment.keep_capture(enrolment.take_photo(posted_pictures()))
    except CameraError as e:
        return render_template("register.html", form=RegisterForm(), error=str(e)), e.status
    return redirect(url_for("register.confirm"))


@bp.route("/camera", methods=("GET", "POST"))
@heavy
def confirm():
    """Show the kiosk photo; a POST registers the person with it."""
    path = enrolment.captured_path()
    if path is None:
        flash("Take a photo first - or upload one.")
        return redirect(url_for("register.register"))
    form = AccountForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("register_camera.html", form=form, error=first_error(form)), status
    try:
        user = enrolment.register_user(form.username.data, form.password.data, path)
    except EnrollError as e:
        return render_template("register_camera.html", form=form, error=str(e)), e.status
    enrolment.discard_capture()
    flash(WELCOME.format(user.username))
    return redirect(url_for("login.login"))


@bp.get("/camera/photo")
def captured_photo():
    """Serve this session's unconfirmed kiosk photo, to this session only."""
    path = enrolment.captured_path()
    if path is None:
        return render_template("error.html", error="There is no photo to show"), 404
    return send_file(path, mimetype="image/jpeg", max_age=0)


@bp.post("/camera/discard")
def discard():
    """Throw the kiosk photo away and go back to the registration page."""
    enrolment.discard_capture()
    return redirect(url_for("register.register"))
