"""Consent to keep face data: the notice's version (templates/_consent_notice.html), and its record on the account.

No face data is taken without a consent: registration with a face, a kiosk photo, and a
first face (or one after the notice changed) added to an account each need the `consent` box.
"""

from datetime import datetime
from typing import NamedTuple

from flask import current_app, session

from models import utcnow

NOTICE = "_consent_notice.html"
VERSION_LENGTH = 32  # users.consent_version
# The refusals say that nothing was kept, and what to do instead.
REFUSED = (
    "We keep no face data without your agreement, and none was taken: tick the box to agree, "
    "or register without face login (a password only)"
)
REFUSED_TO_ADD = (
    "We keep no face data without your agreement, and none was taken: tick the box to agree, "
    "or keep logging in with your password"
)
TICKED = ("y", "on")  # what a ticked box posts: our value, and a browser's default


class Consent(NamedTuple):
    """A person's agreement to the notice: its version, and when it was given."""

    version: str
    at: datetime


def current_version():
    """Return the version of the consent notice in force, as its template sets it."""
    version = current_app.jinja_env.get_template(NOTICE).module.consent_version
    if not isinstance(version, str) or not 0 < len(version) <= VERSION_LENGTH:
        raise ValueError(f"{NOTICE} must set consent_version to a text of 1 to {VERSION_LENGTH} characters")
    return version


def given(value):
    """Return the Consent a posted `consent` field gives (now, to the current notice), or None if not ticked."""
    return Consent(current_version(), utcnow()) if value in TICKED else None


def needed(user):
    """Return True if adding a face to `user` needs their consent: they have no face, or agreed to an older notice."""
    # A person with a face and a current consent adds more photos under it; a first face,
    # or one after their face was deleted, or after the notice changed, is asked for anew.
    return not user.templates() or user.consent_version != current_version()


def record(user, consent):
    """Write `consent` on `user` (the caller commits)."""
    user.consent_version, user.consented_at = consent.version, consent.at


def _key(capture_key):
    """Return the session key of the consent given with the kiosk photo under `capture_key`."""
    return f"{capture_key}_consent"


def hold(capture_key, consent):
    """Keep, with this session's kiosk photo, the consent given when it was taken."""
    session[_key(capture_key)] = [consent.version, consent.at.isoformat()]


def held(capture_key):
    """Return the consent given when this session's kiosk photo was taken, or None."""
    value = session.get(_key(capture_key))
    try:
        version, at = value
        return Consent(str(version), datetime.fromisoformat(at))
    except (TypeError, ValueError):
        return None


def drop(capture_key):
    """Forget the consent held with a kiosk photo that is gone."""
    session.pop(_key(capture_key), None)


def check(app):
    """Refuse to start when the consent notice has no usable version."""
    with app.app_context():
        current_version()
