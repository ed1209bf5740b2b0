"""Database models: the `db` handle and the `User` with its pickled face templates."""

import functools
import io
import math
import pickle
import sqlite3
from datetime import datetime, timezone

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app, has_app_context
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Boolean, event, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, PickleType, String, false, func
from sqlalchemy.exc import SQLAlchemyError
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
    """Return `value` as a list of templates if it is 0+ lists of 128 finite floats, else raise."""
    # An empty list is a user without a face yet: an admin made from the command
    # line, or a user whose face an admin reset. The gallery has nothing to add.
    if not isinstance(value, list) or not 0 <= len(value) <= MAX_STORED_TEMPLATES:
        raise TamperedTemplateError(f"face templates must be a list of at most {MAX_STORED_TEMPLATES}")
    for template in value:
        if not isinstance(template, list) or len(template) != ENCODING_SIZE:
            raise TamperedTemplateError("each face template must hold 128 numbers")
        if not all(type(x) is float and math.isfinite(x) for x in template):
            raise TamperedTemplateError("face templates must be finite floats")
    return value


@functools.cache
def _multi_fernet(keys):
    """Return a MultiFernet for comma-separated keys (the first encrypts, all decrypt)."""
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def template_cipher():
    """Return the cipher for FACE_TEMPLATE_KEY, or None when templates are stored in clear."""
    keys = current_app.config.get("FACE_TEMPLATE_KEY") if has_app_context() else None
    return _multi_fernet(keys) if keys else None


def is_sealed(data):
    """Return True if stored template bytes are a Fernet token rather than a bare pickle."""
    return bytes(data[:1]) == b"g"  # Fernet tokens are base64 of version byte 0x80: "gAAAAA"


class TemplatePickler:
    """The pickler for `User.face_encodings`: plain lists in, checked plain lists out.

    With FACE_TEMPLATE_KEY set the pickle is sealed with Fernet (encrypted and
    authenticated), so a row can be neither read nor forged without the key.
    """

    @staticmethod
    def dumps(value, protocol=pickle.HIGHEST_PROTOCOL):
        """Pickle a checked list of templates made of builtin floats only, sealed if a key is set."""
        plain = [[float(x) for x in template] for template in value]
        data = pickle.dumps(check_templates(plain), protocol=protocol)
        cipher = template_cipher()
        return cipher.encrypt(data) if cipher else data

    @staticmethod
    def loads(data):
        """Open (if sealed) and unpickle stored templates without resolving any global, then check them."""
        data = bytes(data)
        cipher = template_cipher()
        if cipher is None and is_sealed(data):
            raise TamperedTemplateError("face templates are encrypted but FACE_TEMPLATE_KEY is not set")
        if cipher is not None:
            try:
                data = cipher.decrypt(data)
            except InvalidToken as e:
                raise TamperedTemplateError("face templates do not open with FACE_TEMPLATE_KEY") from e
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
    # Deferred: loaded only when asked for, so a tampered value cannot stop the
    # rest of the row (and the password login) from loading.
    face_encodings: Mapped[list] = mapped_column(PickleType(pickler=TemplatePickler), deferred=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set whenever the templates change; the in-memory face index watches it.
    faces_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
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


_raw_templates = db.Table("users", db.MetaData(), db.Column("id", Integer), db.Column("face_encodings", LargeBinary))
KEY_HELP = ("generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'")


def reseal_templates():
    """Seal every user's templates with the first FACE_TEMPLATE_KEY; return how many rows changed."""
    cipher = template_cipher()
    rows = db.session.execute(db.select(_raw_templates.c.id, _raw_templates.c.face_encodings)).all()
    for user_id, data in rows:
        data = bytes(data)
        if is_sealed(data):
            sealed = cipher.rotate(data)
        else:  # stored in clear before the key was set: check it, then seal it
            sealed = cipher.encrypt(pickle.dumps(check_templates(_NoGlobalsUnpickler(io.BytesIO(data)).load())))
        db.session.execute(_raw_templates.update().where(_raw_templates.c.id == user_id)
                           .values(face_encodings=sealed))
    db.session.commit()
    return len(rows)


def check_template_key(app):
    """Refuse to start when FACE_TEMPLATE_KEY is malformed or cannot open the stored templates."""
    with app.app_context():
        try:
            cipher = template_cipher()
        except (ValueError, TypeError) as e:
            raise RuntimeError(f"FACE_TEMPLATE_KEY is not a valid Fernet key: {KEY_HELP}") from e
        try:
            data = db.session.execute(db.select(_raw_templates.c.face_encodings).limit(1)).scalar()
        except SQLAlchemyError:
            db.session.rollback()  # no schema yet (before `flask db upgrade`): nothing to check
            return
        if data is None or not is_sealed(bytes(data)):
            if data is not None and cipher is not None:
                app.logger.warning("face templates are stored in clear: run `flask faces rekey` to seal them")
            return
        if cipher is None:
            raise RuntimeError("The face templates are encrypted: set FACE_TEMPLATE_KEY to the key they were sealed with")
        try:
            cipher.decrypt(bytes(data))
        except InvalidToken as e:
            raise RuntimeError(
                "FACE_TEMPLATE_KEY does not open the stored face templates. To change keys, set "
                "FACE_TEMPLATE_KEY=NEW,OLD and run `flask faces rekey`") from e
