"""Kiosk registration: the one-time link from `flask kiosks add` stores this browser's device credential."""

from flask import Blueprint, abort, flash, redirect, url_for

from facelogin.services import sessions

bp = Blueprint("kiosks", __name__, url_prefix="/kiosks")
EXPIRED = "This kiosk link is not valid - it was used already or has expired. Ask staff for a new one."


@bp.get("/enrol/<code>")
def enrol(code):
    """Register this browser as the kiosk named when the link was made (a plain GET, used once)."""
    enrolled = sessions.enrol_device(code) if len(code) <= 64 else None
    if enrolled is None:
        abort(404, EXPIRED)
    device, secret = enrolled
    flash(f"This browser is now the registered kiosk {device.name}: face login works here.")
    response = redirect(url_for("login.login"))
    sessions.set_device_cookie(response, secret)
    return response
