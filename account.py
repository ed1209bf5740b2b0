"""The logged-in user's own face photos: add another template, remove one."""

from flask import Blueprint, flash, g, redirect, render_template, url_for

from camera import CameraError
from enroll import EnrollError, add_template, has_face_photo, remove_template
from kiosk import take_photo
from forms import ActionForm, PhotoForm, first_error
from security import login_required

bp = Blueprint("account", __name__, url_prefix="/protected/faces")


def _protected_page(error, status):
    """Re-render the protected page with an error."""
    return render_template("protected.html", form=ActionForm(), photo_form=PhotoForm(),
                           has_photo=has_face_photo(g.user), error=error), status


@bp.post("")
@login_required
def add():
    """Add another photo of the logged-in user, checked to be the same person."""
    form = PhotoForm()
    if not form.validate_on_submit():
        return _protected_page(first_error(form), 400)
    try:
        add_template(g.user, form.photo.data.read())
    except EnrollError as e:
        return _protected_page(str(e), e.status)
    flash("Photo added: the kiosk now knows you from one more picture.")
    return redirect(url_for("auth.protected"))


@bp.post("/capture")
@login_required
def capture():
    """Add another photo of the logged-in user, taken with the kiosk camera."""
    if not ActionForm().validate_on_submit():
        return _protected_page("This page has expired - reload it and try again", 400)
    try:
        add_template(g.user, take_photo())
    except EnrollError as e:
        return _protected_page(str(e), e.status)
    except CameraError as e:
        return _protected_page(str(e), getattr(e, "status", 503))
    flash("Photo added: the kiosk now knows you from one more picture.")
    return redirect(url_for("auth.protected"))


@bp.post("/<int:number>/delete")
@login_required
def remove(number):
    """Remove one of the logged-in user's face templates."""
    if not ActionForm().validate_on_submit():
        return _protected_page("This page has expired - reload it and try again", 400)
    try:
        remove_template(g.user, number)
    except EnrollError as e:
        return _protected_page(str(e), e.status)
    flash(f"Photo {number} removed.")
    return redirect(url_for("auth.protected"))
