"""Administering accounts, shared by /admin and `flask users`: create, delete, reset, unlock, list."""

from typing import NamedTuple

from facelogin.services import learning, privacy, storage
from facelogin.services.attempts import is_locked
from facelogin.services.sessions import PASSWORD_HELP, PASSWORD_LENGTH, USERNAME_HELP, USERNAME_RULE, hash_password
from models import LoginAttempt, User, db


class AccountError(Exception):
    """An account action was refused; the message says why."""


def create_admin(username, password):
    """Create an admin account that has a password and no face yet."""
    if not USERNAME_RULE.fullmatch(username):
        raise AccountError(USERNAME_HELP)
    if not PASSWORD_LENGTH[0] <= len(password) <= PASSWORD_LENGTH[1]:
        raise AccountError(PASSWORD_HELP)
    if User.by_username(username):
        raise AccountError(f"{username} already exists")
    user = User(username=username, password_hash=hash_password(password), face_encodings=[], is_admin=True)
    db.session.add(user)
    db.session.commit()
    return user


def promote(user):
    """Make an existing user an admin."""
    user.is_admin = True
    db.session.commit()


def delete_user(user):
    """Delete the account and all its face data; login attempts keep no link (privacy.delete_account)."""
    privacy.delete_account(user)


def reset_face(user):
    """Forget the user's face data; face login off until a new photo (privacy.erase_face)."""
    privacy.erase_face(user)


def unlock(user):
    """Clear every lockout of the user: face and password counters, timers and the face switch."""
    user.face_failures, user.face_locked_until, user.face_disabled = 0, None, False
    user.password_failures, user.password_locked_until = 0, None
    db.session.commit()


class Row:
    """One account as the admin page and `flask users list` show it."""

    def __init__(self, user):
        """Read what is shown of `user`: templates (None if unreadable), learned ones, photo, lock state."""
        self.user = user
        self.templates = user.templates()
        self.template_count = len(self.templates or ())
        self.learned = learning.learned_of(user)
        self.unreadable = self.templates is None
        self.has_photo = storage.has_face_photo(user)
        self.locked = is_locked(user)


def account_rows():
    """Return a Row for every account, oldest first."""
    return [Row(u) for u in db.session.execute(db.select(User).order_by(User.id)).scalars()]


# The audit log's reasons (services/attempts.py, engine/faces.py, engine/liveness.py) in staff's words.
PLAIN_REASONS = {
    "not_recognised": "face not recognised",
    "no_face": "no face seen",
    "dark": "too dark",
    "too_small": "face too far away",
    "many_faces": "more than one face",
    "no_blink": "no blink seen",
    "no_movement": "head movement not made",
    "wrong_way": "head moved the wrong way",
    "not_frontal": "did not start facing the camera",
    "jump": "the face jumped between frames",
    "flat": "looked flat (a photo or a screen?)",
    "match": "recognised",
}


def plain_reason(reason):
    """Return an attempt's reason as staff read it ("not_recognised" -> "face not recognised")."""
    if not reason:
        return ""
    if reason.startswith("camera "):
        return "camera: " + reason.removeprefix("camera ").replace("_", " ")
    return PLAIN_REASONS.get(reason, reason.replace("_", " "))


def recent_attempts(limit=20):
    """Return the newest login attempts with the usernames they involve."""
    rows = db.session.execute(
        db.select(LoginAttempt).order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc()).limit(limit)
    )
    attempts = rows.scalars().all()
    ids = {a.claimed_user_id for a in attempts} | {a.matched_user_id for a in attempts}
    names = dict(db.session.execute(db.select(User.id, User.username).where(User.id.in_(ids - {None}))).all())
    return [(a, names.get(a.claimed_user_id), names.get(a.matched_user_id)) for a in attempts]


# How the refused face came in: the attempt's mode (services/enrolment.py) as /admin words it.
CONFLICT_PATHS = {"register": "photo file", "register-camera": "kiosk camera", "add-photo": "added photo"}


class Conflict(NamedTuple):
    """A refused enrolment of a face that another account holds, as /admin shows it."""

    attempt: LoginAttempt  # reason: the username tried; matched_user_id: the holder
    holder: User | None  # None once the holder's account is deleted
    holder_has_face: bool  # False once resolved: the holder's face was reset (or the account deleted)
    holder_has_photo: bool
    how: str


def face_conflicts(limit=20):
    """Return the newest refused enrolments of an already enrolled face, with their holders."""
    rows = db.session.execute(
        db.select(LoginAttempt)
        .where(LoginAttempt.outcome == "conflict")
        .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
        .limit(limit)
    )
    conflicts = []
    for attempt in rows.scalars().all():
        holder = db.session.get(User, attempt.matched_user_id) if attempt.matched_user_id else None
        has_face = bool(holder is not None and holder.templates())
        has_photo = holder is not None and storage.has_face_photo(holder)
        conflicts.append(Conflict(attempt, holder, has_face, has_photo, CONFLICT_PATHS.get(attempt.mode, attempt.mode)))
    return conflicts
