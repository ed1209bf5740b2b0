"""The in-memory face index of every enrolled user, kept in step with the database.

On SQLite each lookup asks the users table whether the faces changed (a signature).
On PostgreSQL a listener thread hears of every change through LISTEN/NOTIFY (the
triggers of migration 0009 send them in the changing transaction, so they arrive
at its commit), and a lookup re-reads only the users it was told about.
"""

import itertools
import logging
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from datetime import timedelta

import psycopg
from flask import current_app
from sqlalchemy import LargeBinary, func, text, type_coerce
from sqlalchemy.engine import make_url

from facelogin.engine import faces
from models import LearnedTemplate, User, db, load_templates

LATE_COMMITS = timedelta(minutes=10)
COUNT_EVERY = 5.0  # seconds: how stale the index may be about deletions

CHANNEL = "facelogin_gallery"  # the triggers of migration 0009 notify here: "<kind>:<user id>"
KINDS = ("enrol", "faces", "delete", "learned")  # what the user id's row went through
PENDING_LIMIT = 50_000  # more changed users than this between two lookups: read everyone again
READ_BATCH = 1000  # changed users re-read per query
LISTEN_CHECK = 10.0  # seconds between the listener's checks that its connection is alive
LISTEN_RETRY = (0.2, 10.0)  # the listener's first and longest wait before reconnecting
READY_WAIT = 5.0  # seconds a first lookup waits for the listener, instead of loading everyone twice
SYNC_WAIT = 5.0  # seconds an enrolment waits to hear its own sync notification
ENROL_LOCK_KEY = 0x66616365  # "face": the advisory lock every enrolment holds on PostgreSQL

log = logging.getLogger(__name__)


class Listener(threading.Thread):
    """A connection that LISTENs on CHANNEL and passes every notification to its Gallery."""

    def __init__(self, conninfo, gallery):
        """Prepare (not start) a listener on the libpq URL `conninfo` for `gallery`."""
        super().__init__(name="gallery-listener", daemon=True)
        self.conninfo = conninfo
        # A weak reference: a discarded app (the tests make many) takes its listener down with it.
        self.gallery = weakref.ref(gallery)
        self.ready = threading.Event()  # set while LISTEN is in force on a live connection
        self.tried = threading.Event()  # set once the first connection was tried, whatever came of it
        self.stopping = threading.Event()
        self.connections = 0  # connections made so far (each one began with a full refresh)
        self.connection = None

    def connect(self):
        """Open the listening connection: autocommit, with TCP keepalives so a silent network loss is noticed."""
        return psycopg.connect(
            self.conninfo,
            autocommit=True,
            application_name="facelogin-gallery",
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )

    def run(self):
        """Listen until stopped, reconnecting after a loss; each (re)connection asks for a full refresh."""
        wait = LISTEN_RETRY[0]
        while not self.stopping.is_set() and self.gallery() is not None:
            try:
                with self.connect() as conn:
                    self.connection = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    if self._notifying(conn):
                        # LISTEN first, then the refresh: a change committed after the refresh's
                        # snapshot is heard, one before it is read. Missed ones are read either way.
                        self.connections += 1
                        self._tell("*")
                        self.ready.set()
                        self.tried.set()
                        wait = LISTEN_RETRY[0]
                        self._listen(conn)
                    else:
                        wait = LISTEN_RETRY[1]  # until `flask db upgrade` has run
            except psycopg.errors.InvalidCatalogName as e:
                log.error("the gallery listener stops: %s", e)
                return
            except psycopg.Error as e:
                log.warning("the gallery listener lost its connection (retrying in %.1f s): %s", wait, e)
            finally:
                self.ready.clear()
                self.connection = None
                self.tried.set()
            self.stopping.wait(wait)
            wait = min(wait * 2, LISTEN_RETRY[1])

    @staticmethod
    def _notifying(conn):
        """Return True if the database has migration 0009's triggers; else say so (the gallery polls meanwhile)."""
        found = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'users_gallery_notify'").fetchone()[0]
        if not found:
            log.warning("the database sends no face change notifications yet: run `flask db upgrade`")
        return bool(found)

    def _listen(self, conn):
        """Pass notifications on until stopped; a dead connection raises within LISTEN_CHECK seconds."""
        while not self.stopping.is_set():
            for note in conn.notifies(timeout=LISTEN_CHECK):
                if not self._tell(note.payload):
                    return
            conn.execute("SELECT 1")

    def _tell(self, payload):
        """Hand `payload` to the gallery; return False once the gallery is gone."""
        gallery = self.gallery()
        if gallery is None:
            return False
        gallery.notified(payload)
        return True

    def stop(self):
        """Stop listening and close the connection (it may take until the next check)."""
        self.stopping.set()


class Gallery:
    """A FaceIndex over all users, refreshed when the database says the faces changed."""

    def __init__(self, listen_url=None):
        """Start empty; the first lookup builds the index. `listen_url`: a PostgreSQL URL to LISTEN on."""
        self._lock = threading.Lock()
        self._index = faces.FaceIndex()
        self._signature = None
        self._counted = 0.0  # time.monotonic() of the last count(*)
        self._listen_url = listen_url
        self.listener = None
        # What the listener heard since the last lookup: user ids, or everything.
        self._heard = threading.Condition()
        self._pending, self._everything = set(), True
        self._syncs = {}  # token of a sync this process waits for: heard yet?
        self._starting = threading.Lock()

    # --- PostgreSQL: notifications ------------------------------------------------------------
    def notified(self, payload):
        """Record one notification: "<kind>:<user id>", "sync:<token>", or "*" (everything may have changed)."""
        kind, _, value = payload.partition(":")
        with self._heard:
            if kind == "sync":
                if value in self._syncs:  # other processes' syncs are none of our business
                    self._syncs[value] = True
            elif kind in KINDS and value.isdigit() and len(self._pending) < PENDING_LIMIT:
                self._pending.add(int(value))
            else:  # "*", too many at once, or a payload this version does not know: read everything
                self._everything, self._pending = True, set()
            self._heard.notify_all()

    def _listening(self):
        """Return True when a live listener keeps the index in step, starting it on first use."""
        if self._listen_url is None:
            return False
        if self.listener is None:
            with self._starting:
                if self.listener is None:
                    listener = Listener(self._listen_url, self)
                    listener.start()
                    listener.tried.wait(READY_WAIT)
                    self.listener = listener
        return self.listener.ready.is_set()

    def sync(self):
        """Wait until every change committed before this call has been heard (PostgreSQL); else read everything."""
        if not self._listening():
            return
        token = uuid.uuid4().hex
        with self._heard:
            self._syncs[token] = False
        try:
            # Notifications arrive in commit order: once this one is heard, so is every earlier one.
            with db.engine.connect() as conn:
                conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": f"sync:{token}"}
                )
                conn.commit()
            with self._heard:
                if not self._heard.wait_for(lambda: self._syncs[token], SYNC_WAIT):
                    log.warning("the gallery did not hear its sync notification: reading every user again")
                    self._everything = True
        finally:
            with self._heard:
                del self._syncs[token]

    def _take_heard(self):
        """Return (everything, user ids) heard since the last call, and forget them."""
        with self._heard:
            heard = self._everything, self._pending
            self._everything, self._pending = False, set()
            return heard

    def _apply_heard(self):
        """Re-read the users the listener heard about (everyone after a reconnection)."""
        everything, pending = self._take_heard()
        self._signature = None  # should the listener fail, polling starts from a full read
        try:
            if everything:
                self._index = faces.FaceIndex.from_users(self._load())
            elif pending:
                ids = sorted(pending)
                changed = []
                for start in range(0, len(ids), READ_BATCH):
                    batch = ids[start : start + READ_BATCH]
                    found = dict(self._load(ids=batch))
                    # A user without a row was deleted: an empty list takes them out.
                    changed += [(user_id, found.get(user_id, [])) for user_id in batch]
                self._index = self._index.replace(changed)
        except BaseException:
            with self._heard:
                self._everything = True  # what was taken out is not lost: the next lookup reads all
            raise

    # --- SQLite (and PostgreSQL while the listener is down): polling ----------------------------
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

    def _load(self, since=None, ids=None):
        """Yield (user id, templates) of every user, of those changed since a signature, or of `ids`.

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
        if ids is not None:
            query = query.where(User.id.in_(ids))
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
        """Return the FaceIndex, brought up to date first with what changed in the database."""
        if self._listening():
            with self._lock:
                self._apply_heard()
                return self._index
        signature = self._current_signature()
        with self._lock:
            if signature != self._signature:
                self._refresh(signature)
                self._signature = signature
            return self._index

    def templates_of(self, user_id):
        """Return `user_id`'s templates as the database holds them now (enrolled, then learned)."""
        return next((templates for _, templates in self._load(ids=[user_id])), [])

    def close(self):
        """Stop the listener, if any."""
        if self.listener is not None:
            self.listener.stop()


def still_matches(user_id, encoding, tolerance):
    """Return True if `encoding` is within `tolerance` of `user_id`'s templates as stored now.

    The index a login was decided on may be a notification behind the database: a
    face reset or a removed photo committed elsewhere a moment ago must refuse it.
    """
    templates = get_gallery().templates_of(user_id)
    return bool(templates) and encoding is not None and faces.face_distance(templates, encoding).min() <= tolerance


_ENROLLING = threading.Lock()


@contextmanager
def enrolling():
    """Hold the enrolment lock (this process's, and the database's until the transaction ends); sync the gallery.

    Inside, "is this face enrolled already?" and the insert cannot interleave with another
    enrolment anywhere. The caller commits or rolls back inside, which releases the database's lock.
    """
    with _ENROLLING:
        dialect = db.session.get_bind().dialect.name
        if dialect == "postgresql":
            db.session.execute(db.select(func.pg_advisory_xact_lock(ENROL_LOCK_KEY)))
        elif dialect == "sqlite":
            # A write that changes nothing takes SQLite's one write lock now instead of at the insert.
            db.session.execute(text("UPDATE users SET id = id WHERE 0"))
        get_gallery().sync()
        yield


def get_gallery():
    """Return this app's Gallery."""
    return current_app.extensions["face_gallery"]


def listen_url(config):
    """Return the libpq URL the gallery LISTENs on (GALLERY_LISTEN_URL, else the app's), or None off PostgreSQL."""
    url = make_url(config.get("GALLERY_LISTEN_URL") or config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def init_app(app):
    """Give the app its Gallery."""
    app.extensions["face_gallery"] = Gallery(listen_url(app.config))
