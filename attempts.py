"""A login attempt from start to finish: throttle, look or check, decide, record."""

from typing import NamedTuple

import lockout
from camera import CameraError
from gallery import get_gallery
from login import FACE_MESSAGES, face_login
from models import User, db
from security import verify_password

WRONG_PASSWORD = "Wrong username or password"
NOT_RECOGNISED = {
    "face": FACE_MESSAGES["not_recognised"],
    "username+face": "Face not recognised for that username - try again, or log in with your password",
    "face+password": "Face or password not recognised - try again, or log in with your password",
}
FACE_OFF = "Face login is turned off for this account - log in with your password, or ask staff"


class Outcome(NamedTuple):
    """The user to log in, or the message and status to show instead."""

    user: User | None
    message: str | None = None
    status: int = 200


def _wait(seconds, who="this account"):
    """Return the refusal for a throttled attempt."""
    return Outcome(None, f"Too many attempts for {who} - please wait {seconds} seconds and try again", 429)


def _liveness(decision):
    """Return the liveness result recorded for a decision."""
    return getattr(decision, "liveness", "off")


def face_attempt(mode, username, password, address):
    """Run one face login in `mode` ("face", "username+face" or "face+password")."""
    wait = lockout.address_wait(address)
    if wait:
        lockout.log_attempt(mode, "limited", "address rate limit", address)
        return _wait(wait, "this kiosk")
    claimed = User.by_username(username) if mode != "face" and username else None
    if claimed is not None and (wait := lockout.account_wait(claimed, "face")):
        lockout.log_attempt(mode, "locked", "account locked", address, claimed=claimed)
        return _wait(wait)
    index = get_gallery().index()
    if mode != "face":
        # 1:1: compare only with the claimed user's templates (none if there is no such user).
        index = index.only(claimed.id if claimed else None)
    try:
        decision = face_login(index)
    except CameraError as e:
        lockout.log_attempt(mode, "error", f"camera {e.reason}", address, claimed=claimed)
        return Outcome(None, str(e), getattr(e, "status", 503))  # kiosk.CaptureRefused: 4xx
    password_ok = mode != "face+password" or verify_password(claimed, password or "")
    matched = db.session.get(User, decision.label) if decision.label is not None else None
    if matched is None or not password_ok:
        if claimed is not None:
            lockout.record_failure(claimed, "face")
        reason = decision.reason if matched is None else "wrong password"
        lockout.log_attempt(mode, "failure", reason, address, claimed, matched, decision, _liveness(decision))
        message = NOT_RECOGNISED[mode] if reason in ("not_recognised", "wrong password") else None
        return Outcome(None, message or FACE_MESSAGES.get(reason, NOT_RECOGNISED[mode]), 401)
    if matched.face_disabled or (wait := lockout.account_wait(matched, "face")):
        lockout.log_attempt(mode, "locked", "face login off or locked", address, claimed, matched, decision)
        return Outcome(None, FACE_OFF, 403) if matched.face_disabled else _wait(wait)
    lockout.record_success(matched, "face")
    lockout.log_attempt(mode, "success", "match", address, claimed, matched, decision, _liveness(decision))
    return Outcome(matched)


def password_attempt(username, password, address):
    """Check a username and password, with the password path's own lockout."""
    user = User.by_username(username)
    if user is not None and (wait := lockout.account_wait(user, "password")):
        lockout.log_attempt("password", "locked", "account locked", address, claimed=user)
        return _wait(wait)
    if not verify_password(user, password):
        if user is not None:
            lockout.record_failure(user, "password")
        lockout.log_attempt("password", "failure", "wrong password", address, claimed=user)
        return Outcome(None, WRONG_PASSWORD, 401)
    lockout.record_success(user, "password")
    lockout.log_attempt("password", "success", "password", address, claimed=user, matched=user)
    return Outcome(user)
