"""The admin pages: accounts with their photos, delete, reset a face, re-enable, recent logins."""

import functools
import os
from typing import NamedTuple

from flask import Blueprint, flash, g, redirect, render_template, send_file, url_for

import useradmin
from enroll import known_face_path
from forms import ActionForm
from models import User, db

bp = Blueprint("admin", __name__, url_prefix="/admin")


class Action(NamedTuple):
    """An admin action on one account: what the confirmation page says, and what it does."""

    title: str
    explain: str
    button: str
    run: object
    done: str


ACTIONS = {
    "delete": Action("Delete {name}?",
                     "The account, its face templates and its photo are removed for good. "
                     "Past login attempts stay in the log without the name.",
                     "Delete the account", useradmin.delete_user, "{name} was deleted."),
    "reset-face": Action("Reset {name}'s face?",
                         "Their face templates and photo are removed. Face login stays off for them "
                         "until they log in with their password and add a new photo.",
                         "Reset the face", useradmin.reset_face,
                         "{name}'s face was reset: they log in with their password and add a new photo."),
    "unlock": Action("Re-enable {name}?",
                     "Failed-attempt counters and lockouts are cleared for face and password login, "
                     "and face login is switched back on.",
                     "Re-enable the account", useradmin.unlock, "{name} can log in again."),
}


def admin_required(view):
    """Send anonymous visitors to the login page and refuse users who are not admins."""
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("auth.login"))
        if not g.user.is_admin:
            return render_template("error.html", error="This page is for administrators only"), 403
        return view(**kwargs)
    return wrapped


@bp.get("")
@admin_required
def index():
    """List the accounts and the most recent login attempts."""
    users = db.session.execute(db.select(User).order_by(User.id)).scalars().all()
    rows = [(u, useradmin.template_count(u), useradmin.has_photo(u), useradmin.is_locked(u)) for u in users]
    return render_template("admin/index.html", rows=rows, attempts=useradmin.recent_attempts())


@bp.get("/users/<int:user_id>/photo")
@admin_required
def photo(user_id):
    """Serve a user's enrolled face photo to an admin."""
    path = known_face_path(user_id)
    if not os.path.isfile(path):
        return render_template("error.html", error="That user has no photo"), 404
    return send_file(path, mimetype="image/jpeg", max_age=0)


@bp.route("/users/<int:user_id>/<action>", methods=("GET", "POST"))
@admin_required
def confirm(user_id, action):
    """Ask for confirmation of an action on one account; the confirming POST carries it out."""
    user = db.session.get(User, user_id)
    if action not in ACTIONS or user is None:
        return render_template("error.html", error="There is no such account or action"), 404
    spec, form, name = ACTIONS[action], ActionForm(), user.username
    if not form.validate_on_submit():
        return render_template("admin/confirm.html", user=user, action=action, spec=spec, form=form)
    if action == "delete" and user.id == g.user.id:
        error = "You cannot delete your own account while logged in with it"
        return render_template("admin/confirm.html", user=user, action=action, spec=spec, form=form,
                               error=error), 409
    spec.run(user)
    flash(spec.done.format(name=name))
    return redirect(url_for("admin.index"))


def init_app(app):
    """Register the admin pages."""
    app.register_blueprint(bp)
