"""The in-memory face index of every enrolled user, kept in step with the database."""

import itertools
import threading
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import LargeBinary, func, type_coerce

from facelogin.engine import faces
from models import LearnedTemplate, User, db, load_templates

LATE_COMMITS = timedelta(minutes=10)
COUNT_EVERY = 5.0  # seconds: how stale the index may be about deletions


class Gallery:
    """A FaceIndex over all users, refreshed when the users table says the faces changed."""

    def __init__(self):
        """Start empty; the first lookup builds the index."""
        self._lock = threading.Lock()
        self._index = faces.FaceIndex()
        self._signature = None
        self._counted = 0.0  # time.monotonic() of the last count(*)

    def _current_signature(self):
        """Return a cheap fingerprint of the enrolled faces: count, newest id, newest change."""
        # Separate subqueries, because each max() alone is one b-tree lookup, while
        # together in one SELECT they made SQLite read every row (40 ms at 100k users).
        users = User.__table__
        newest = tuple(
            db.session.execute(
                db.select(
                    db.select(func.max(users.c.id)).scalar_subquery(),
                    db.select(func.max(users.c.faces_updated_at)).scalar_subquery(),
                )
            ).one()
        )
        # count(*) reads a whole index (10 ms at 100k users on PostgreSQL, at 1M on
        # SQLite), and only a deletion changes it alone: a deleted user cannot log in
        # anyway (the login finds no row), so it is counted at most every COUNT_EVERY s.
        known = self._signature
        now = time.monotonic()
        if known is None or newest != known[1:] or now - self._counted >= COUNT_EVERY:
            self._counted = now
            return (db.session.scalar(db.select(func.count()).select_from(users)), *newest)
        return (known[0], *newest)

    def _load(self, since=None):
        """Yield (user id, templates) of every user, or of those added or changed since a signature.

        A user's templates are the enrolled ones and then the learned ones. A row that
        fails the safety check is logged and given no templates, so one tampered row is
        refused on its own instead of failing the query for everybody.
        """
        raw, learned = type_coerce(User.face_encodings, LargeBinary), type_coerce(LearnedTemplate.encoding, LargeBinary)
        # One stream in user order: a user's learned rows arrive next to their own row.
        query = (
            db.select(User.id, raw, learned)
            .outerjoin(LearnedTemplate, LearnedTemplate.user_id == User.id)
            .order_by(User.id, LearnedTemplate.id)
        )
        if since is not None:
            _, max_id, max_updated = since
            changed = User.id > (max_id or 0)
            if max_updated is not None:
                # Re-read a few minutes before the newest change too: a transaction that
                # committed late carries an older timestamp than one already seen.
                changed = changed | (User.faces_updated_at >= max_updated - LATE_COMMITS)
            query = query.where(changed)
        # Streamed in batches: buffered, 1M rows of pickled templates took 1.2 GB at once.
        rows = db.session.execute(query.execution_options(yield_per=2000))
        for user_id, group in itertools.groupby(rows, key=lambda row: row[0]):
            group = list(group)
            data = group[0][1]
            enrolled = (load_templates(user_id, data) or []) if data is not None else []
            # Learned templates only add to a readable enrolment: without one there is no face login.
            extra = [load_templates(user_id, row[2]) or [] for row in group if row[2] is not None] if enrolled else []
            yield user_id, enrolled + [template for templates in extra for template in templates]

    def _refresh(self, signature):
        """Bring the index up to `signature`: only the changed rows when nobody was deleted."""
        old = self._signature
        if old is not None and old[0]:
            changed = list(self._load(since=old))
            added = sum(1 for user_id, _ in changed if user_id > (old[1] or 0))
            # Counts that add up mean no row was deleted (or added behind our back):
            # the changed users' templates replace theirs. Otherwise read everything.
            if old[0] + added == signature[0]:
                self._index = self._index.replace(changed)
                return
        self._index = faces.FaceIndex.from_users(self._load())

    def forget(self, user_id):
        """Drop `user_id`'s templates from the index now, without waiting for the next look at the database."""
        # Erasure (services/privacy.py) calls this after its commit, so this process forgets the
        # face before the response returns; other processes are made safe by the login's own
        # re-read of the matched user (attempts.face_attempt), whatever their index still holds.
        with self._lock:
            self._index = self._index.replace([(user_id, [])])

    def index(self):
        """Return the FaceIndex, brought up to date first if the database changed since the last look."""
        signature = self._current_signature()
        with self._lock:
            if signature != self._signature:
                self._refresh(signature)
                self._signature = signature
            return self._index


def get_gallery():
    """Return this app's Gallery."""
    return current_app.extensions["face_gallery"]


def init_app(app):
    """Give the app its Gallery."""
    app.extensions["face_gallery"] = Gallery()
