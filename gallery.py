"""The in-memory face index of every enrolled user, kept in step with the database."""

import logging
import threading

from flask import current_app
from sqlalchemy import LargeBinary, func, type_coerce

import faces
from models import TamperedTemplateError, TemplatePickler, User, db

log = logging.getLogger(__name__)


class Gallery:
    """A FaceIndex over all users, rebuilt when the users table says the faces changed."""

    def __init__(self):
        """Start empty; the first lookup builds the index."""
        self._lock = threading.Lock()
        self._index = faces.FaceIndex()
        self._signature = None

    def _current_signature(self):
        """Return a cheap fingerprint of the enrolled faces: count, newest id, newest change."""
        return tuple(db.session.execute(
            db.select(func.count(User.id), func.max(User.id), func.max(User.faces_updated_at))
        ).one())

    def _load(self):
        """Read every user's templates, skipping (and logging) rows that fail the safety check."""
        # The raw bytes are unpickled row by row, so one tampered row is refused
        # on its own instead of failing the query for everybody.
        raw = type_coerce(User.face_encodings, LargeBinary)
        for user_id, data in db.session.execute(db.select(User.id, raw)):
            try:
                yield user_id, TemplatePickler.loads(data)
            except (TamperedTemplateError, EOFError, ValueError) as e:
                log.warning("refused face templates of user %s: %s", user_id, e)

    def index(self):
        """Return the FaceIndex, rebuilt first if the database changed since the last build."""
        signature = self._current_signature()
        with self._lock:
            if signature != self._signature:
                self._index = faces.FaceIndex.from_users(self._load())
                self._signature = signature
            return self._index


def get_gallery():
    """Return this app's Gallery."""
    return current_app.extensions["face_gallery"]


def init_app(app):
    """Give the app its Gallery."""
    app.extensions["face_gallery"] = Gallery()
