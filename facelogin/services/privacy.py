"""The person's own face data: erasure (self-service, /admin, `flask users`), export, and the retention purge.

Every deletion of face data goes through erase_face or delete_account, whoever asks: the
logged-in person, an admin, `flask users delete` or `flask faces purge`.
"""

import os
from datetime import timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import and_, func, or_

from facelogin.services import attempts, learning, storage, thumbnails
from facelogin.services.gallery import get_gallery
from models import LearnedTemplate, LoginAttempt, User, as_utc, db, utcnow

PURGED = "Your face data was deleted after {days} days without a login; add a photo to use face login again."


def _own_attempts(user):
    """Return the condition selecting the login attempts about `user`: claimed by them, or matching their face."""
    # A refused enrolment matched to them (outcome "conflict") is someone else's attempt with
    # someone else's name and address: theirs to see only through staff, never in this person's data.
    return or_(
        LoginAttempt.claimed_user_id == user.id,
        and_(LoginAttempt.matched_user_id == user.id, LoginAttempt.outcome != "conflict"),
    )


def _snapshot_path(name):
    """Return the file of a login snapshot named in the audit log."""
    return os.path.join(current_app.config["UPLOAD_FOLDER"], "attempts", os.path.basename(name))


def _drop_snapshots(user):
    """Clear the snapshot column of `user`'s login attempts (the caller commits); return the files to delete."""
    names = db.session.scalars(
        db.select(LoginAttempt.snapshot).where(_own_attempts(user), LoginAttempt.snapshot.is_not(None))
    ).all()
    db.session.execute(
        db.update(LoginAttempt)
        .where(_own_attempts(user), LoginAttempt.snapshot.is_not(None))
        .values(snapshot=None)
        .execution_options(synchronize_session=False)
    )
    return [_snapshot_path(name) for name in names]


def _remove_files(user_id, snapshots):
    """Delete a user's face photo, thumbnails and the given snapshot files (after the commit)."""
    # The rows go first: a file without a row is harmless and deleted here, a row
    # pointing to a missing file would show a broken picture.
    storage.remove(storage.known_face_path(user_id))
    thumbnails.remove_all(user_id)
    for path in snapshots:
        storage.remove(path)


def _clear_face(user):
    """Empty `user`'s templates and learned ones, reset face lockouts (face login is off: no templates)."""
    user.face_encodings = []
    learning.forget(user)  # also marks the user changed (faces_updated_at) for every process's gallery
    user.face_failures, user.face_locked_until, user.face_disabled = 0, None, False


def erase_face(user):
    """Delete every face template of `user` (learned ones too), their face photo, thumbnails and login snapshots.

    The account and password stay; face login is off until a new photo is added.
    """
    _clear_face(user)
    snapshots = _drop_snapshots(user)
    db.session.commit()
    get_gallery().forget(user.id)
    _remove_files(user.id, snapshots)


def delete_account(user):
    """Delete `user` and every trace of their face; their login attempts stay without a link to them.

    What an attempt row keeps is what the audit needs and no longer tells who: when, how, the
    outcome and, for a refusal, from where. Removed: the user links, the distance and margin (a
    measure of their face), the snapshot, the name a refused enrolment was tried under, and the
    address of their successful logins (a success says "this person was here then").
    """
    user_id = user.id
    snapshots = _drop_snapshots(user)
    own = _own_attempts(user)
    linked = or_(LoginAttempt.claimed_user_id == user.id, LoginAttempt.matched_user_id == user.id)
    for where, values in (
        (and_(own, LoginAttempt.outcome == "success"), {"client_addr": None}),
        (and_(own, LoginAttempt.outcome == "conflict"), {"reason": None}),  # the name they tried
        # Last, as it clears the links the two above select by. Where they held a face someone else
        # tried to enrol, the row is the other person's: only the link and the distance to their face go.
        (linked, {"claimed_user_id": None, "matched_user_id": None, "distance": None, "margin": None}),
    ):
        db.session.execute(
            db.update(LoginAttempt).where(where).values(values).execution_options(synchronize_session=False)
        )
    db.session.delete(user)  # its learned templates go with it (ON DELETE CASCADE)
    db.session.commit()
    get_gallery().forget(user_id)
    _remove_files(user_id, snapshots)


# --- export -----------------------------------------------------------------------------------


def _when(moment):
    """Return a time as ISO 8601 UTC text, or None."""
    return as_utc(moment).isoformat() if moment is not None else None


def export(user, with_templates=False):
    """Return everything kept about `user` as a JSON-ready dict; the template numbers only if asked."""
    enrolled = user.templates()
    learned = db.session.scalars(
        db.select(LearnedTemplate).where(LearnedTemplate.user_id == user.id).order_by(LearnedTemplate.learned_at)
    ).all()
    rows = db.session.scalars(
        db.select(LoginAttempt).where(_own_attempts(user)).order_by(LoginAttempt.at, LoginAttempt.id)
    ).all()
    learned_numbers = [row.template() for row in learned]
    face = {
        "enrolled_templates": None if enrolled is None else len(enrolled),
        "templates_readable": enrolled is not None,
        "templates_changed_at": _when(user.faces_updated_at),
        "learned_templates": [{"learned_at": _when(row.learned_at), "distance": row.distance} for row in learned],
        "face_photo_kept": storage.has_face_photo(user),
        "thumbnails_kept": sum(thumbnails.has(user.id, t) for t in [*(enrolled or ()), *learned_numbers]),
        "face_purged_at": _when(user.face_purged_at),
    }
    if with_templates:
        face["enrolled_template_numbers"] = enrolled
        for item, numbers in zip(face["learned_templates"], learned_numbers, strict=True):
            item["numbers"] = numbers
    return {
        "account": {
            "id": user.id,
            "username": user.username,
            "created_at": _when(user.created_at),
            "last_login_at": _when(user.last_login_at),
            "is_admin": user.is_admin,
            "password": "set (kept only as a salted scrypt hash, not included)",
            "face_login_disabled": user.face_disabled,
            "face_failures": user.face_failures,
            "face_locked_until": _when(user.face_locked_until),
            "password_failures": user.password_failures,
            "password_locked_until": _when(user.password_locked_until),
        },
        "consent": {"version": user.consent_version, "consented_at": _when(user.consented_at)},
        "face": face,
        "login_attempts": [
            {
                "at": _when(row.at),
                "mode": row.mode,
                "outcome": row.outcome,
                "reason": row.reason,
                "address": row.client_addr,
                "liveness": row.liveness,
                "snapshot_kept": row.snapshot is not None,
            }
            for row in rows
        ],
        "retention": {
            "face_retention_days": current_app.config["FACE_RETENTION_DAYS"],
            "snapshot_retention_days": current_app.config["SNAPSHOT_RETENTION_DAYS"],
        },
    }


# --- retention --------------------------------------------------------------------------------


class Due(NamedTuple):
    """An account whose face data the retention purge deletes: when it was last seen, and since when it is due."""

    user: User
    last_seen: object
    due_at: object


def _last_seen():
    """Return the SQL expression of an account's last sign of life: its last login, else its creation."""
    return func.coalesce(User.last_login_at, User.created_at)


def _may_hold_face():
    """Return the condition of accounts that may hold face data: never purged, or given a face since."""
    return or_(User.face_purged_at.is_(None), User.faces_updated_at > User.face_purged_at)


def _holds_face(user):
    """Return True if `user` holds any face data: templates (readable or not), learned ones, or the photo."""
    enrolled = user.templates()
    learned = db.session.scalar(db.select(func.count()).where(LearnedTemplate.user_id == user.id))
    return enrolled is None or bool(enrolled) or bool(learned) or storage.has_face_photo(user)


def due_for_purge(now=None):
    """Return the accounts with face data and no login for FACE_RETENTION_DAYS days, longest unseen first."""
    days = current_app.config["FACE_RETENTION_DAYS"]
    if not days:
        return []
    cutoff = (now or attempts.clock()) - timedelta(days=days)
    query = db.select(User, _last_seen()).where(_last_seen() < cutoff, _may_hold_face()).order_by(_last_seen(), User.id)
    return [
        Due(user, as_utc(seen), as_utc(seen) + timedelta(days=days))
        for user, seen in db.session.execute(query).all()
        if _holds_face(user)
    ]


def purge(dry_run=False):
    """Delete the face data of every account due (due_for_purge); return the Due ones it deleted (or would)."""
    now = attempts.clock()
    due = due_for_purge(now)
    if dry_run:
        return due
    cutoff = now - timedelta(days=current_app.config["FACE_RETENTION_DAYS"])
    done = []
    for item in due:
        # One stamp for both: equal, they say "purged, no face since" (_may_hold_face).
        stamp = utcnow()
        # Claimed in one UPDATE with the conditions checked again: a login since the listing, or
        # another purge running at the same time, leaves it alone (0 rows); the claim and the
        # erasure commit together.
        claimed = db.session.execute(
            db.update(User)
            .where(User.id == item.user.id, _last_seen() < cutoff, _may_hold_face())
            .values(face_purged_at=stamp, faces_updated_at=stamp)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            db.session.rollback()
            continue
        db.session.refresh(item.user)
        _clear_face(item.user)
        item.user.faces_updated_at = stamp
        snapshots = _drop_snapshots(item.user)
        db.session.commit()
        get_gallery().forget(item.user.id)
        _remove_files(item.user.id, snapshots)
        done.append(item)
    return done


def last_purge():
    """Return when the retention purge last deleted someone's face data, or None."""
    return as_utc(db.session.scalar(db.select(func.max(User.face_purged_at))))


def purge_notice(user):
    """Return the message owed to `user` at this login if the purge deleted their face since their last one."""
    purged, last = as_utc(user.face_purged_at), as_utc(user.last_login_at)
    if purged is None or (last is not None and last >= purged) or user.templates():
        return None
    return PURGED.format(days=current_app.config["FACE_RETENTION_DAYS"])
