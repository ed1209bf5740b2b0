"""The admin pages: accounts with their photos and learned templates, delete, reset a face, re-enable, kiosks,
face conflicts, logins."""

import functools
from typing import NamedTuple

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup

from facelogin.forms import ActionForm
from facelogin.services import accounts, health, learning, privacy, sessions, storage
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
    "delete": Action(
        "Delete {name}?",
        "The account, its face templates (learned ones too), its photo and thumbnails are removed for good. "
        "Past login attempts stay in the log without the name or any measure of the face.",
        "Delete the account",
        accounts.delete_user,
        "{name} was deleted.",
    ),
    "reset-face": Action(
        "Reset {name}'s face?",
        "Their face templates (learned ones too), photo and thumbnails are removed. Face login stays off for them "
        "until they log in with their password and add a new photo.",
        "Reset the face",
        accounts.reset_face,
        "{name}'s face was reset: they log in with their password and add a new photo.",
    ),
    "unlock": Action(
        "Re-enable {name}?",
        "Failed-attempt counters and lockouts are cleared for face and password login, "
        "and face login is switched back on.",
        "Re-enable the account",
        accounts.unlock,
        "{name} can log in again.",
    ),
}


FORGET_LEARNED = Action(
    "Remove a learned template of {name}?",
    "This template was learned {when} UTC{where}. Their enrolled photos stay; face login goes on "
    "with them, and the next sure live login may learn a new one.",
    "Remove the learned template",
    None,
    "A learned template of {name} was removed.",
)


DELETE_SELF = "You cannot delete your own account while logged in with it - ask another administrator"


def admin_required(view):
    """Send anonymous visitors to the login page and refuse users who are not admins."""

    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("login.login", next=request.path))  # back here after logging in
        if not g.user.is_admin:
            abort(403, "This page is for administrators only")
        return view(**kwargs)

    return wrapped


@bp.get("")
@admin_required
def index():
    """List the accounts, kiosks, refused enrolments of known faces, latest attempts and recognition health."""
    recognition = health.summary(limit=health.SHOW_LOOKALIKES)
    return render_template(
        "admin/index.html",
        rows=accounts.account_rows(),
        devices=sessions.list_devices(),
        conflicts=accounts.face_conflicts(),
        attempts=accounts.recent_attempts(),
        recognition=recognition,
        plain=accounts.plain_reason,
        # Drawn by engine/plot.py from numbers only; every text in it is escaped there.
        histogram=Markup(health.histogram(recognition)),
        form=ActionForm(),
        purge_due=privacy.due_for_purge(),
        last_purge=privacy.last_purge(),
    )


@bp.get("/users/<int:user_id>/photo")
@admin_required
def photo(user_id):
    """Serve a user's enrolled face photo to an admin."""
    return storage.send_face_photo(user_id)


@bp.route("/users/<int:user_id>/<action>", methods=("GET", "POST"))
@admin_required
def confirm(user_id, action):
    """Ask for confirmation of an action on one account; the confirming POST carries it out."""
    user = db.session.get(User, user_id)
    if action not in ACTIONS or user is None:
        abort(404, "There is no such account or action")
    spec, form, name = ACTIONS[action], ActionForm(), user.username
    if action == "delete" and user.id == g.user.id:
        # Not even offered: the confirmation page would ask for something that cannot be done.
        back = (url_for("admin.index"), "Back to administration")
        return render_template("error.html", error=DELETE_SELF, title="Not possible", back=back), 409
    if not form.validate_on_submit():
        return render_template("admin/confirm.html", user=user, action=action, spec=spec, form=form)
    spec.run(user)
    flash(spec.done.format(name=name))
    return redirect(url_for("admin.index"))


@bp.route("/users/<int:user_id>/learned/<int:learned_id>", methods=("GET", "POST"))
@admin_required
def forget_learned(user_id, learned_id):
    """Ask for confirmation of removing one learned template of an account; the confirming POST removes it."""
    user = db.session.get(User, user_id)
    item = next((x for x in learning.learned_of(user) if x.id == learned_id), None) if user else None
    if item is None:
        abort(404, "There is no such account or learned template")
    form, name = ActionForm(), user.username
    if not form.validate_on_submit():
        where = f" at a login from {item.attempt.client_addr}" if item.attempt and item.attempt.client_addr else ""
        spec = FORGET_LEARNED._replace(
            explain=FORGET_LEARNED.explain.format(when=f"{item.learned_at:%Y-%m-%d %H:%M}", where=where)
        )
        return render_template("admin/confirm.html", user=user, spec=spec, form=form, target=request.path)
    learning.remove(user, learned_id)
    flash(FORGET_LEARNED.done.format(name=name))
    return redirect(url_for("admin.index"))


@bp.post("/kiosks/<name>/revoke")
@admin_required
def revoke_kiosk(name):
    """Revoke a registered kiosk: its browser loses face login, camera capture and the preview."""
    try:
        sessions.revoke_device(name)
    except sessions.DeviceError as e:
        abort(404, str(e))
    flash(f"Kiosk {name} was revoked.")
    return redirect(url_for("admin.index"))
