"""The logged-in person's own page: greeting, their face photo, adding or removing face photos and learned ones,
and their own data: download it, delete the face data, delete the account."""

import json

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from facelogin.engine import limits
from facelogin.engine.camera import CameraError
from facelogin.forms import ActionForm, PasswordCheckForm, PhotoForm, first_error, posted_pictures
from facelogin.services import attempts, consent, enrolment, learning, privacy, storage, thumbnails
from facelogin.services.capacity import heavy
from facelogin.services.enrolment import EnrollError
from facelogin.services.sessions import (
    NEEDS_KIOSK_FOR_CAMERA,
    client_address,
    current_device,
    login_required,
    logout_user,
    verify_password,
)

bp = Blueprint("account", __name__, url_prefix="/protected")
ADDED = "Photo added: the kiosk now knows you from one more picture."


def _page(error=None, status=200):
    """Render the logged-in page, with an error if there is one."""
    templates = g.user.templates()
    return render_template(
        "protected.html",
        form=ActionForm(),
        photo_form=PhotoForm(),
        has_photo=storage.has_face_photo(g.user),
        templates=templates,
        pictures=[thumbnails.has(g.user.id, t) for t in templates or ()],
        learned=learning.learned_of(g.user, pictures=True),
        ask_consent=consent.needed(g.user),
        error=error or (enrolment.TEMPLATES_UNREADABLE if templates is None else None),
    ), status


@bp.get("")
@login_required
def protected():
    """Greet the logged-in user with their enrolled photo and their face photos."""
    return _page()


@bp.get("/photo")
@login_required
def photo():
    """Serve the logged-in user's enrolled face photo, to that user only."""
    return storage.send_face_photo(g.user.id)


@bp.post("/faces")
@login_required
@heavy
def add():
    """Add another photo of the logged-in user, checked to be the same person."""
    form = PhotoForm()
    if not form.validate_on_submit():
        return _page(first_error(form), 400)
    try:
        agreed = consent.given(request.form.get("consent"))
        enrolment.add_template(g.user, form.photo.data.read(), client_address(), agreed)
    except EnrollError as e:
        return _page(str(e), e.status)
    flash(ADDED)
    return redirect(url_for("account.protected"))


@bp.get("/faces/<int:number>/picture")
@login_required
def picture(number):
    """Serve the thumbnail of the logged-in user's face template `number` (1-based), to that user only."""
    templates = g.user.templates() or []
    if not 1 <= number <= len(templates):
        abort(404)
    return thumbnails.send(g.user.id, templates[number - 1])


@bp.get("/learned/<int:learned_id>/picture")
@login_required
def learned_picture(learned_id):
    """Serve the thumbnail of one of the logged-in user's learned templates, to that user only."""
    return thumbnails.send(g.user.id, learning.template_of(g.user, learned_id))


@bp.post("/faces/capture")
@login_required
@heavy
def capture():
    """Take another photo of the logged-in user with the kiosk camera, check it, and show it to confirm."""
    if current_device() is None:
        return _page(NEEDS_KIOSK_FOR_CAMERA, 403)
    try:
        agreed = consent.given(request.form.get("consent"))
        enrolment.capture_to_add(g.user, posted_pictures(), client_address(), agreed)
    except (EnrollError, CameraError) as e:
        return _page(str(e), e.status)
    return redirect(url_for("account.confirm"))


@bp.route("/faces/camera", methods=("GET", "POST"))
@login_required
@heavy
def confirm():
    """Show the kiosk photo just taken; a POST adds it as another photo of the logged-in user."""
    if enrolment.captured_path(enrolment.ADDING) is None:
        flash("Take a photo first - or add a photo file.")
        return redirect(url_for("account.protected"))
    form = ActionForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("protected_camera.html", form=form, error=first_error(form)), status
    try:
        enrolment.add_captured(g.user, client_address())
    except EnrollError as e:
        return render_template("protected_camera.html", form=form, error=str(e)), e.status
    flash(ADDED)
    return redirect(url_for("account.protected"))


@bp.get("/faces/camera/photo")
@login_required
def captured_photo():
    """Serve the logged-in user's unconfirmed kiosk photo, to this session only."""
    return storage.send_private(enrolment.captured_path(enrolment.ADDING))


@bp.post("/faces/camera/discard")
@login_required
def discard():
    """Throw the kiosk photo away and go back to the user's page."""
    enrolment.discard_capture(enrolment.ADDING)
    return redirect(url_for("account.protected"))


@bp.post("/faces/<int:number>/delete")
@login_required
def remove(number):
    """Remove one of the logged-in user's face templates."""
    try:
        enrolment.remove_template(g.user, number)
    except EnrollError as e:
        return _page(str(e), e.status)
    flash(f"Photo {number} removed.")
    return redirect(url_for("account.protected"))


@bp.post("/learned/<int:learned_id>/delete")
@login_required
def forget(learned_id):
    """Remove one of the templates learned at the logged-in user's logins."""
    if not learning.remove(g.user, learned_id):
        return _page("There is no such learned template", 404)
    flash("Learned template removed: the kiosk no longer uses it.")
    return redirect(url_for("account.protected"))


# --- the person's own data --------------------------------------------------------------------

FACE_DELETED = "Your face data was deleted. Face login is off: log in with your password; add a photo to use it again."
ACCOUNT_DELETED = "Your account and all its face data were deleted."
EXPORT_ON_KIOSK = (
    "Download your data on your own phone or computer: a file saved here would stay on this kiosk "
    "for the next person. Log in there with your username and password."
)


@bp.route("/face/delete", methods=("GET", "POST"))
@login_required
def delete_face():
    """Ask for confirmation of deleting the logged-in user's face data; the confirming POST deletes it."""
    form = ActionForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("protected_confirm.html", form=form, action="face", error=first_error(form)), status
    enrolment.discard_capture(enrolment.ADDING)  # a kiosk photo waiting to be added is a face too
    privacy.erase_face(g.user)
    flash(FACE_DELETED)
    return redirect(url_for("account.protected"))


@bp.route("/delete", methods=("GET", "POST"))
@login_required
def delete_account():
    """Ask for the password to delete the logged-in user's account; the confirming POST deletes it."""
    form = PasswordCheckForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("protected_confirm.html", form=form, action="account", error=first_error(form)), status
    # The password again: a session left open on a kiosk must not let the next person delete the
    # account. Guesses count against the account's password lockout, like the login's.
    if wait := attempts.claim_account(g.user, "password"):
        error = f"Too many wrong passwords - please wait {wait} seconds and try again"
        return render_template("protected_confirm.html", form=form, action="account", error=error), 429
    try:
        right = verify_password(g.user, form.password.data)
    except limits.Busy:
        return render_template("protected_confirm.html", form=form, action="account", error=attempts.BUSY), 503
    if not right:
        error = "Wrong password - the account was not deleted"
        return render_template("protected_confirm.html", form=form, action="account", error=error), 401
    enrolment.discard_capture(enrolment.ADDING)
    user = g.user
    logout_user()
    privacy.delete_account(user)
    flash(ACCOUNT_DELETED)
    return redirect(url_for("login.home"))


@bp.get("/data.json")
@login_required
def export():
    """Answer with everything kept about the logged-in user as a JSON file (?with=templates adds the numbers)."""
    if current_device() is not None:
        return _page(EXPORT_ON_KIOSK, 409)
    data = privacy.export(g.user, with_templates=request.args.get("with") == "templates")
    response = current_app.response_class(json.dumps(data, indent=2) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{g.user.username}-data.json"'
    response.headers["Cache-Control"] = "no-store"  # personal data: not for the browser's cache
    return response
