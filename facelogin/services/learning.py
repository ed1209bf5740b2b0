"""Learned templates: a confident live login refreshes one of the user's LEARN_SLOTS learned templates.

The enrolled templates are never touched. A learned template must lie within
LEARN_MAX_DISTANCE of the user's enrolled ones, so the gallery can follow a face
through hair, glasses, light and age but never walk away from the enrolled face.
Each keeps a thumbnail of the login's face (services/thumbnails.py), deleted with it.
"""

from typing import NamedTuple

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from facelogin.config import learning_bars
from facelogin.engine import faces
from facelogin.services import thumbnails
from facelogin.services.gallery import get_gallery
from models import LearnedTemplate, LoginAttempt, db, utcnow


class Learned(NamedTuple):
    """A learned template as the user's page and /admin show it."""

    id: int
    learned_at: object
    distance: float
    attempt: LoginAttempt | None  # the login it came from (None once the audit row is gone)
    picture: bool = False  # a thumbnail is on disk (asked for with learned_of(pictures=True))


def learned_of(user, pictures=False):
    """Return `user`'s learned templates, oldest first, with the logins they came from (and if each has a picture)."""
    rows = db.session.execute(
        db.select(LearnedTemplate, LoginAttempt)
        .outerjoin(LoginAttempt, LoginAttempt.id == LearnedTemplate.attempt_id)
        .where(LearnedTemplate.user_id == user.id)
        .order_by(LearnedTemplate.learned_at, LearnedTemplate.id)
    ).all()
    return [
        Learned(row.id, row.learned_at, row.distance, attempt, pictures and thumbnails.has(user.id, row.template()))
        for row, attempt in rows
    ]


def template_of(user, learned_id):
    """Return the template of `user`'s learned template `learned_id`, or None (not theirs, or it does not load)."""
    row = db.session.get(LearnedTemplate, learned_id)
    return row.template() if row is not None and row.user_id == user.id else None


def _rows(user):
    """Return `user`'s LearnedTemplate rows, oldest first."""
    query = db.select(LearnedTemplate).where(LearnedTemplate.user_id == user.id)
    return db.session.execute(query.order_by(LearnedTemplate.learned_at, LearnedTemplate.id)).scalars().all()


def learn_from_login(user, decision, attempt=None):
    """Keep an accepted login's capture as a learned template of `user` if faces.should_learn allows; return it.

    The match is taken again over the whole gallery (a 1:1 login compared with one
    user only), and the capture is measured against the enrolled templates alone.
    """
    cfg = current_app.config
    if not cfg["LEARN_TEMPLATES"] or decision.encoding is None:
        return None
    enrolled = user.templates()
    if not enrolled:  # no face, or an unreadable row: nothing to anchor on
        return None
    match = get_gallery().index().identify(decision.encoding)
    anchor = float(faces.face_distance(enrolled, decision.encoding).min())
    if match.label != user.id or not faces.should_learn(
        match.distance,
        match.runner_up - match.distance,
        decision.liveness == "passed",
        anchor,
        **learning_bars(cfg),
    ):
        return None
    try:
        old = _rows(user)
        evicted = old[: max(0, len(old) - cfg["LEARN_SLOTS"] + 1)]
        evicted_templates = [row.template() for row in evicted]
        for row in evicted:
            db.session.delete(row)  # the oldest make room
        learned = LearnedTemplate(
            user_id=user.id,
            encoding=[decision.encoding.tolist()],
            learned_at=utcnow(),
            distance=match.distance,
            attempt_id=attempt.id if attempt is not None else None,
        )
        db.session.add(learned)
        user.faces_updated_at = utcnow()  # the gallery re-reads this user
        db.session.commit()
    except SQLAlchemyError as e:
        # The login itself has succeeded; only the refresh is lost, and the log says so.
        db.session.rollback()
        current_app.logger.warning("could not keep a learned template of user %s: %s", user.id, e)
        return None
    thumbnails.remove(user.id, evicted_templates)
    _keep_picture(user, decision)
    return learned


def _keep_picture(user, decision):
    """Keep the thumbnail of a learned template, from the frame it was encoded in; a failure is only logged."""
    if decision.snapshot is None or decision.box is None:
        return
    try:
        thumbnails.save(user.id, decision.encoding.tolist(), thumbnails.picture(decision.snapshot, decision.box))
    except OSError as e:
        # The template is kept; the page shows "no picture" for it.
        current_app.logger.warning("could not keep the picture of a learned template of user %s: %s", user.id, e)


def remove(user, learned_id):
    """Remove one of `user`'s learned templates; return False if they have no such template."""
    row = db.session.get(LearnedTemplate, learned_id)
    if row is None or row.user_id != user.id:
        return False
    template = row.template()
    db.session.delete(row)
    user.faces_updated_at = utcnow()
    db.session.commit()
    thumbnails.remove(user.id, [template])
    return True


def forget(user):
    """Remove every learned template of `user` (the caller commits, then removes their thumbnails)."""
    db.session.execute(db.delete(LearnedTemplate).where(LearnedTemplate.user_id == user.id))
    user.faces_updated_at = utcnow()


def prune(user, enrolled):
    """Remove `user`'s learned templates no longer near the `enrolled` ones; return them (the caller commits)."""
    # After an enrolled photo is removed, a learned template may only have been close to that one.
    bar = learning_bars(current_app.config)["max_distance"]
    pruned = []
    for row in _rows(user):
        template = row.template()
        if template is None or not enrolled or faces.face_distance(enrolled, template).min() > bar:
            db.session.delete(row)
            user.faces_updated_at = utcnow()
            pruned.append(template)
    return pruned
