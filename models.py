"""Database models: the `db` handle and the `User` with its pickled face templates."""

import io
import math
import pickle
import sqlite3
from datetime import datetime, timezone

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Boolean, event, DateTime, Float, ForeignKey, Index, Integer, PickleType, String, false, func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

db = SQLAlchemy()


@event.listens_for(Engine, "connect")
def _enforce_sqlite_foreign_keys(dbapi_connection, connection_record):
    """Make SQLite honour ON DELETE rules, as PostgreSQL always does."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

ENCODING_SIZE = 128
MAX_STORED_TEMPLATES = 32


class TamperedTemplateError(pickle.UnpicklingError):
    """A stored face-template value is not a list of 128-float lists."""


class _NoGlobalsUnpickler(pickle.Unpickler):
    """An unpickler that refuses every class and function reference."""

    def find_class(self, module, name):
        # Lists and floats unpickle without any global lookup, so any lookup at all
        # means the row was not written by us: refuse it before anything can run.
        raise TamperedTemplateError(f"forbidden global {module}.{name} in face templates")


def check_templates(value):
    """Return `value` as a list of templates if it is 1+ lists of 128 finite floats, else raise."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_STORED_TEMPLATES:
        raise TamperedTemplateError("face templates must be a non-empty list")
    for template in value:
        if not isinstance(template, list) or len(template) != ENCODING_SIZE:
            raise TamperedTemplateError("each face template must hold 128 numbers")
        if not all(type(x) is float and math.isfinite(x) for x in template):
            raise TamperedTemplateError("face templates must be finite floats")
    return value


class TemplatePickler:
    """The pickler for `User.face_encodings`: plain lists in, checked plain lists out."""

    @staticmethod
    def dumps(value, protocol=pickle.HIGHEST_PROTOCOL):
        """Pickle a checked list of templates made of builtin floats only."""
        plain = [[float(x) for x in template] for template in value]
        return pickle.dumps(check_templates(plain), protocol=protocol)

    @staticmethod
    def loads(data):
        """Unpickle stored templates without resolving any global, then check their shape."""
        return check_templates(_NoGlobalsUnpickler(io.BytesIO(data)).load())


def utcnow():
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class User(db.Model):
    """A kiosk user: a password, one or more face templates and the login bookkeeping."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    face_encodings: Mapped[list] = mapped_column(PickleType(pickler=TemplatePickler))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set whenever the templates change; the in-memory face index watches it.
    faces_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A fresh random value per login: a session cookie is valid only while it
    # carries the current one, so logging out kills copies of the old cookie too.
    session_token: Mapped[str | None] = mapped_column(String(64))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Lockout bookkeeping: each login path counts its own consecutive failures.
    face_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    face_locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    face_disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    password_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    password_locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # Usernames are ASCII by validation, so lower() folds case the same way
        # on SQLite and PostgreSQL.
        Index("uq_user_username_lower", func.lower(username), unique=True),
    )

    @classmethod
    def by_username(cls, username):
        """Return the user whose name matches `username` ignoring case, or None."""
        return db.session.execute(
            db.select(cls).where(func.lower(cls.username) == username.lower())
        ).scalar_one_or_none()


class LoginAttempt(db.Model):
    """One login attempt, for the audit trail and for per-address rate limits."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    mode: Mapped[str] = mapped_column(String(32))  # face, username+face, face+password, password
    claimed_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    matched_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    distance: Mapped[float | None] = mapped_column(Float)
    margin: Mapped[float | None] = mapped_column(Float)
    liveness: Mapped[str | None] = mapped_column(String(32))  # off, passed, failed
    outcome: Mapped[str] = mapped_column(String(16))  # success, failure, locked, limited
    reason: Mapped[str | None] = mapped_column(String(64))
    client_addr: Mapped[str | None] = mapped_column(String(64), index=True)
    snapshot: Mapped[str | None] = mapped_column(String(255))
