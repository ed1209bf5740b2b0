"""Administering accounts, shared by /admin and `flask users`: create, delete, reset, unlock."""

import os
import re

from flask import current_app

import lockout
from enroll import known_face_path
from models import LoginAttempt, TamperedTemplateError, User, db, utcnow
from security import hash_password

# The same rule as the registration form: ASCII, so case folding is the same everywhere.
USERNAME_RULE = re.compile(r"[A-Za-z0-9_.-]{3,64}")


class AccountError(Exception):
    """An account action was refused; the message says why."""


def has_photo(user):
    """Return True if the user's enrolled face photo is on disk."""
    return os.path.isfile(known_face_path(user.id))


def create_admin(username, password):
    """Create an admin account that has a password and no face yet."""
    if not USERNAME_RULE.fullmatch(username):
        raise AccountError("Use 3 to 64 letters, digits, dots, dashes or underscores for the username")
    if not 8 <= len(password) <= 128:
        raise AccountError("Use 8 to 128 characters for the password")
    if User.by_username(username):
        raise AccountError(f"{username} already exists")
    user = User(username=username, password_hash=hash_password(password), face_encodings=[],
                is_admin=True)
    db.session.add(user)
    db.session.commit()
    return user


def promote(user):
    """Make an existing user an admin."""
    user.is_admin = True
    db.session.commit()


def delete_user(user):
    """Delete the user's row and templates, then their face photo; login attempts keep no link."""
    path = known_face_path(user.id)
    db.session.delete(user)
    db.session.commit()
    # The row is gone first: a photo without a row is harmless, a row pointing to
    # a missing photo would show a broken picture.
    if os.path.exists(path):
        os.remove(path)


def reset_face(user):
    """Forget the user's face: no templates, no photo; face login stays off until they add a new photo."""
    user.face_encodings = []
    user.faces_updated_at = utcnow()  # the gallery rebuilds without them
    user.face_failures, user.face_locked_until, user.face_disabled = 0, None, False
    db.session.commit()
    path = known_face_path(user.id)
    if os.path.exists(path):
        os.remove(path)


def unlock(user):
    """Clear every lockout of the user: face and password counters, timers and the face switch."""
    user.face_failures, user.face_locked_until, user.face_disabled = 0, None, False
    user.password_failures, user.password_locked_until = 0, None
    db.session.commit()


def is_locked(user):
    """Return True if either login path of the user is locked or switched off right now."""
    return bool(user.face_disabled or lockout.account_wait(user, "face")
                or lockout.account_wait(user, "password"))


def template_count(user):
    """Return how many face templates the user has (0 if their stored value is refused)."""
    try:
        return len(user.face_encodings)
    except (TamperedTemplateError, EOFError, ValueError):  # the gallery skips such a row too
        current_app.logger.warning("refused face templates of user %s", user.id)
        return 0


def recent_attempts(limit=20):
    """Return the newest login attempts with the usernames they involve."""
    rows = db.session.execute(db.select(LoginAttempt).order_by(LoginAttempt.at.desc(),
                                                               LoginAttempt.id.desc()).limit(limit))
    attempts = rows.scalars().all()
    ids = {a.claimed_user_id for a in attempts} | {a.matched_user_id for a in attempts}
    names = dict(db.session.execute(db.select(User.id, User.username).where(User.id.in_(ids - {None}))).all())
    return [(a, names.get(a.claimed_user_id), names.get(a.matched_user_id)) for a in attempts]
