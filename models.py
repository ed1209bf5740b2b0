"""Database models: the `db` handle and the `User` with its pickled face templates."""

import logging
import sqlite3
from datetime import UTC, datetime

from cryptography.fernet import InvalidToken
from flask import current_app, has_app_context
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PickleType,
    String,
    event,
    false,
    func,
    type_coerce,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from facelogin.engine import templates
from facelogin.engine.templates import TamperedTemplateError, is_sealed

db = SQLAlchemy()


@event.listens_for(Engine, "connect")
def _enforce_sqlite_foreign_keys(dbapi_connection, connection_record):
    """Make SQLite honour ON DELETE rules, as PostgreSQL always does."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA foreign_keys=ON")


log = logging.getLogger(__name__)


def template_cipher():
    """Return the cipher for FACE_TEMPLATE_KEY, or None when templates are stored in clear."""
    return templates.cipher_for(current_app.config.get("FACE_TEMPLATE_KEY")) if has_app_context() else None


class TemplatePickler:
    """The pickler for `User.face_encodings`: checked plain lists, sealed with FACE_TEMPLATE_KEY if set."""

    @staticmethod
    def dumps(value, protocol=None):
        """Pickle a checked list of templates, sealed if a key is set."""
        return templates.dumps(value, template_cipher())

    @staticmethod
    def loads(data):
        """Open and unpickle stored templates without resolving any global, then check them."""
        return templates.loads(data, template_cipher())


def load_templates(user_id, data):
    """Return the templates stored for a user, or None when they do not load (the row is logged)."""
    # The one loader for stored templates: a garbage, truncated, foreign or wrongly
    # keyed row refuses that user's face login and nothing else.
    try:
        return TemplatePickler.loads(data)
    except TamperedTemplateError as e:
        log.warning("refused face templates of user %s: %s", user_id, e)
        return None


def utcnow():
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(moment):
    """Return `moment` as an aware UTC datetime (SQLite hands back naive ones), or None."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


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
    # When `flask faces purge` last deleted this account's face data (FACE_RETENTION_DAYS); it is
    # also the faces_updated_at it set, so a face added since makes the account a candidate again.
    face_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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
    # The consent to keep face data (services/consent.py): the notice's version agreed to, and when.
    # None for a password-only account, and for accounts enrolled before consent was asked.
    consent_version: Mapped[str | None] = mapped_column(String(32))
    consented_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # Usernames are ASCII by validation, so lower() folds case the same way
        # on SQLite and PostgreSQL.
        Index("uq_user_username_lower", func.lower(username), unique=True),
    )

    def templates(self):
        """Return this user's face templates, or None when the stored value does not load."""
        raw = db.session.scalar(db.select(type_coerce(User.face_encodings, LargeBinary)).where(User.id == self.id))
        return [] if raw is None else load_templates(self.id, raw)

    @classmethod
    def by_username(cls, username):
        """Return the user whose name matches `username` ignoring case, or None."""
        return db.session.execute(
            db.select(cls).where(func.lower(cls.username) == username.lower())
        ).scalar_one_or_none()


class LearnedTemplate(db.Model):
    """A template taken from one of the user's confident live logins, kept apart from the enrolled ones."""

    __tablename__ = "learned_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # One template as a one-item list, through the same checked, sealed pickler as the enrolled ones.
    encoding: Mapped[list] = mapped_column(PickleType(pickler=TemplatePickler), deferred=True)
    learned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    distance: Mapped[float] = mapped_column(Float)  # the login's distance to the user's closest template
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("login_attempts.id", ondelete="SET NULL"))

    def template(self):
        """Return the learned template, or None when the stored value does not load."""
        raw = db.session.scalar(
            db.select(type_coerce(LearnedTemplate.encoding, LargeBinary)).where(LearnedTemplate.id == self.id)
        )
        loaded = load_templates(self.user_id, raw) if raw is not None else None
        return loaded[0] if loaded and len(loaded) == 1 else None


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
    challenge: Mapped[str | None] = mapped_column(String(8))  # left, right, up, down (LIVENESS=challenge)
    outcome: Mapped[str] = mapped_column(String(16))  # success, failure, locked, limited
    reason: Mapped[str | None] = mapped_column(String(64))
    client_addr: Mapped[str | None] = mapped_column(String(64), index=True)
    snapshot: Mapped[str | None] = mapped_column(String(255))


class LoginChallenge(db.Model):
    """A head movement drawn for one login attempt, kept server-side so that it can be used only once."""

    __tablename__ = "login_challenges"

    # The session cookie is signed but lives in the browser: a saved copy could replay a challenge,
    # so the server itself records which nonces were issued and which were used.
    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateLimit(db.Model):
    """A counter of attempts for one key (an address, a path) in a window, claimed in one UPDATE."""

    __tablename__ = "rate_limits"

    # One row per key: "face:ADDRESS", "password:ADDRESS", "password:*", "register:ADDRESS".
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KioskDevice(db.Model):
    """A kiosk browser allowed to use face login: its name and the hash of its device secret."""

    __tablename__ = "kiosk_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the one-time enrolment code until it is used, then of the device secret:
    # the database never holds a value that opens anything.
    enrol_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    enrol_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    enrolled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


_raw_templates = db.Table("users", db.MetaData(), db.Column("id", Integer), db.Column("face_encodings", LargeBinary))
_raw_learned = db.Table(
    "learned_templates", db.MetaData(), db.Column("id", Integer), db.Column("encoding", LargeBinary)
)


def reseal_templates():
    """Seal every user's templates (enrolled and learned) with the first FACE_TEMPLATE_KEY; return how many users."""
    changed = _reseal(_raw_templates, _raw_templates.c.face_encodings, "face templates of user")
    _reseal(_raw_learned, _raw_learned.c.encoding, "learned face template")
    db.session.commit()
    return changed


def _reseal(table, column, what):
    """Seal every row of one raw template column with the first key; return how many rows changed."""
    cipher = template_cipher()
    changed = 0
    for row_id, data in db.session.execute(db.select(table.c.id, column)).all():
        try:
            sealed = templates.reseal(data, cipher)
        except (TamperedTemplateError, InvalidToken):
            log.warning("left the %s %s as they were: they do not load", what, row_id)
            continue
        db.session.execute(table.update().where(table.c.id == row_id).values({column: sealed}))
        changed += 1
    return changed


KEY_SAMPLE = 20  # stored rows tried at start-up: one bad row must not stop the app


def check_template_key(app):
    """Refuse to start when FACE_TEMPLATE_KEY is malformed or opens none of the stored sealed templates."""
    with app.app_context():
        cipher = template_cipher()  # its format was checked with the other settings (facelogin/config.py)
        try:
            sample = db.session.execute(db.select(_raw_templates.c.face_encodings).limit(KEY_SAMPLE)).scalars().all()
        except SQLAlchemyError:
            db.session.rollback()  # no schema yet (before `flask db upgrade`): nothing to check
            return
        stored = [bytes(data) for data in sample if data is not None]
        sealed = [data for data in stored if is_sealed(data)]
        if cipher is not None and len(sealed) < len(stored):
            app.logger.warning("some face templates are stored in clear: run `flask faces rekey` to seal them")
        if not sealed:
            return
        if cipher is None:
            if len(sealed) < len(stored):
                return  # rows in clear load: the sealed-looking ones are bad rows, refused one by one
            raise RuntimeError(
                "The face templates are encrypted: set FACE_TEMPLATE_KEY to the key they were sealed with"
            )
        if not any(_opens(cipher, data) for data in sealed):
            raise RuntimeError(
                "FACE_TEMPLATE_KEY does not open the stored face templates. To change keys, set "
                "FACE_TEMPLATE_KEY=NEW,OLD and run `flask faces rekey`"
            )


def _opens(cipher, data):
    """Return True if `cipher` opens sealed template bytes."""
    try:
        cipher.decrypt(data)
        return True
    except InvalidToken:
        return False
