"""Registration: with a photo file, or with a photo taken by the kiosk camera and confirmed first."""

from flask import Blueprint, flash, g, redirect, render_template, request, send_file, url_for

from facelogin.engine.camera import CameraError
from facelogin.forms import AccountForm, RegisterForm, first_error, posted_pictures
from facelogin.services import consent, enrolment
from facelogin.services.capacity import heavy
from facelogin.services.enrolment import EnrollError
from facelogin.services.sessions import NEEDS_KIOSK_FOR_CAMERA, client_address, current_device

bp = Blueprint("register", __name__, url_prefix="/register")
WELCOME = "Welcome, {}! You can now log in by looking at the camera."
WELCOME_PASSWORD_ONLY = "Welcome, {}! Log in with your username and password; you can add face login on your page."
# Staff registering someone stay logged in, on this page for the next person.
REGISTERED_BY_STAFF = "{} is registered. Log out before you leave the kiosk; then they can log in with their face."


@bp.before_request
def allowed():
    """Refuse registration when REGISTRATION closes it to this visitor; the page itself says why."""
    refusal = enrolment.registration_refusal()
    page = request.endpoint == "register.register" and request.method == "GET"
    # Throwing a kiosk photo away is always allowed: it only deletes.
    if refusal is not None and not page and request.endpoint != "register.discard":
        return render_template("register.html", form=RegisterForm(), refusal=refusal), 403
    return None  # refused registrations are rate limited per address in enrolment.register_user


def _registered(user, welcome=WELCOME):
    """Say who was registered and go on: to the login page, or back here for staff registering people."""
    if g.user is not None:
        flash(REGISTERED_BY_STAFF.format(user.username))
        return redirect(url_for("register.register"))
    flash(welcome.format(user.username))
    return redirect(url_for("login.login"))


def _page(error, status, form=None):
    """Render the registration page with an error."""
    return render_template("register.html", form=form or RegisterForm(), error=error), status


@bp.route("", methods=("GET", "POST"))
@heavy
def register():
    """Enrol a new user from a username, a password, a face photo and their consent to keep it."""
    form = RegisterForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        refusal = enrolment.registration_refusal()
        return render_template("register.html", form=form, error=first_error(form), refusal=refusal), status
    # Before the photo is even read: without consent the face is not looked at, let alone kept.
    agreed = consent.given(request.form.get("consent"))
    if agreed is None:
        return _page(consent.REFUSED, 400, form)
    try:
        user = enrolment.register_user(
            form.username.data, form.password.data, form.photo.data, client_address(), agreed=agreed
        )
    except EnrollError as e:
        return _page(str(e), e.status, form)
    return _registered(user)


@bp.post("/password")
@heavy
def password_only():
    """Enrol a new user with a username and a password only: no face data at all, so no consent is asked."""
    form = AccountForm()
    if not form.validate_on_submit():
        return _page(first_error(form), 400)
    try:
        user = enrolment.register_password_only(form.username.data, form.password.data, client_address())
    except EnrollError as e:
        return _page(str(e), e.status)
    return _registered(user, WELCOME_PASSWORD_ONLY)


@bp.post("/capture")
@heavy
def capture():
    """Take a photo for registration, check it at once, and keep a good one until the person confirms it.

    Consent is asked here, before the camera is used: no photo is taken without it.
    """
    if current_device() is None:
        return _page(NEEDS_KIOSK_FOR_CAMERA, 403)
    try:
        agreed = consent.given(request.form.get("consent"))
        enrolment.capture_to_register(posted_pictures(), client_address(), agreed)
    except (CameraError, EnrollError) as e:
        return _page(str(e), e.status)
    return redirect(url_for("register.confirm"))


@bp.route("/camera", methods=("GET", "POST"))
@heavy
def confirm():
    """Show the kiosk photo; a POST registers the person with it."""
    path, agreed = enrolment.captured_path(), consent.held(enrolment.REGISTERING)
    if path is None or agreed is None:
        enrolment.discard_capture()
        flash("Take a photo first - or upload one.")
        return redirect(url_for("register.register"))
    form = AccountForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("register_camera.html", form=form, error=first_error(form)), status
    try:
        user = enrolment.register_user(
            form.username.data, form.password.data, path, client_address(), mode="register-camera", agreed=agreed
        )
    except EnrollError as e:
        return render_template("register_camera.html", form=form, error=str(e)), e.status
    enrolment.discard_capture()
    return _registered(user)


@bp.get("/camera/photo")
def captured_photo():
    """Serve this session's unconfirmed kiosk photo, to this session only."""
    path = enrolment.captured_path()
    if path is None:
        return render_template("error.html", error="There is no photo to show"), 404
    response = send_file(path, mimetype="image/jpeg", max_age=0)
    response.headers["Cache-Control"] = "no-store"  # a photo of a person who has not enrolled (yet)
    return response


@bp.post("/camera/discard")
def discard():
    """Throw the kiosk photo away and go back to the registration page."""
    enrolment.discard_capture()
    return redirect(url_for("register.register"))
