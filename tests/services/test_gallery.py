"""The gallery: app processes sharing one database see each other's changes at once, read incrementally."""

import sqlite3

import numpy as np
import pytest
from driver import Kiosk, register_kiosk
from sqlalchemy import LargeBinary, type_coerce, update

from facelogin.services import gallery as gallery_module
from facelogin.services.gallery import Gallery, enrolling, get_gallery, still_matches
from models import User, db, utcnow


def test_two_instances_on_one_database(app, make_app, media, photos):
    front = Kiosk(app, app.test_client())
    register_kiosk(app, front.client, "front")
    other = make_app()  # the same database file and folders, its own Gallery
    back = Kiosk(other, other.test_client())
    register_kiosk(other, back.client, "back")
    assert other.extensions["face_gallery"] is not app.extensions["face_gallery"]
    back.look(media["grace_video"])
    assert back.face_login().status_code == 401  # builds back's (empty) index

    assert front.register("grace", photos["grace"]).status_code == 302
    assert back.face_login().headers["Location"] == "/protected"
    assert b"Hello, grace" in back.client.get("/protected").data
    back.client.post("/logout")

    with app.app_context():
        db.session.delete(User.by_username("grace"))
        db.session.commit()
    front.look(media["grace_video"])
    assert front.face_login().status_code == 401
    assert back.face_login().status_code == 401

    # SQLite hands the freed id 1 to the next user: a stale index would now let
    # Grace's face in as Luis. Both instances must know the new face instead.
    assert front.register("luis", photos["luis"]).status_code == 302
    with other.app_context():
        assert User.by_username("luis").id == 1
    assert back.face_login().status_code == 401
    back.look(media["luis_video"])
    assert back.face_login().headers["Location"] == "/protected"
    assert b"Hello, luis" in back.client.get("/protected").data


def test_index_is_reused_until_the_users_change(app, kiosk, photos):
    with app.app_context():
        first = get_gallery().index()
        assert get_gallery().index() is first and len(first) == 0
    kiosk.register("grace", photos["grace"])
    with app.app_context():
        assert len(get_gallery().index()) == 1


def _vector(seed):
    """A fixed 128-d template."""
    return np.random.default_rng(seed).normal(0, 0.09, 128).tolist()


def test_changes_are_read_incrementally_and_deletions_in_full(app, monkeypatch):
    loads = []
    real_load = Gallery._load
    monkeypatch.setattr(
        Gallery, "_load", lambda self, since=None, ids=None: loads.append(since) or real_load(self, since, ids)
    )
    with app.app_context():
        gallery = get_gallery()
        db.session.add_all([User(username=f"u{i}", password_hash="x", face_encodings=[_vector(i)]) for i in range(3)])
        db.session.commit()
        assert len(gallery.index()) == 3 and loads[-1] is None  # first build: everything

        db.session.add(User(username="u3", password_hash="x", face_encodings=[_vector(3)]))
        second = db.session.get(User, 2)
        second.face_encodings = [_vector(3), _vector(30)]
        second.faces_updated_at = utcnow()
        db.session.commit()
        index = gallery.index()
        assert loads[-1] is not None  # only the changed rows were read
        assert len(index) == 5 and index.identify(_vector(30)).label == 2
        assert index.identify(_vector(1)).distance > 0.5  # user 2's old template is gone

        raw = type_coerce(User.face_encodings, LargeBinary)
        db.session.execute(
            update(User).where(User.id == 4).values({raw: b"\x80\x04junk", "faces_updated_at": utcnow()})
        )
        db.session.commit()
        index = gallery.index()
        assert loads[-1] is not None and 4 not in set(index.labels) and len(index) == 4

        db.session.delete(db.session.get(User, 1))
        db.session.commit()
        # A deletion alone is counted at most every COUNT_EVERY seconds (the login
        # refuses a deleted user by its missing row meanwhile), then all is read again.
        assert gallery.index() is index
        monkeypatch.setattr(gallery_module, "COUNT_EVERY", 0.0)
        index = gallery.index()
        assert loads[-1] is None and sorted(set(index.labels)) == [2, 3]


def test_notifications_name_the_users_to_read_again():
    gallery = Gallery()
    gallery._take_heard()  # the first lookup reads everyone; start from there
    for payload in ("enrol:3", "faces:4", "learned:4", "delete:9", "sync:nobody-waits"):
        gallery.notified(payload)
    assert gallery._take_heard() == (False, {3, 4, 9}) and gallery._syncs == {}
    # Anything else (a reconnection, an unknown kind, a damaged payload) reads everyone.
    for payload in ("*", "purge:3", "faces:3; drop", ""):
        gallery.notified("enrol:3")
        gallery.notified(payload)
        assert gallery._take_heard() == (True, set()), payload


def test_too_many_changes_at_once_read_everyone(monkeypatch):
    monkeypatch.setattr(gallery_module, "PENDING_LIMIT", 2)
    gallery = Gallery()
    gallery._take_heard()
    for user_id in range(3):
        gallery.notified(f"enrol:{user_id}")
    assert gallery._take_heard() == (True, set())


def test_heard_changes_are_kept_when_reading_them_fails(app, monkeypatch):
    gallery = Gallery()
    gallery._take_heard()
    gallery.notified("faces:1")

    def broken(self, since=None, ids=None):
        raise RuntimeError("the database went away")
        yield

    monkeypatch.setattr(Gallery, "_load", broken)
    with app.app_context(), pytest.raises(RuntimeError):
        gallery._apply_heard()
    assert gallery._take_heard() == (True, set())


def test_heard_users_are_read_again_and_deleted_ones_dropped(app):
    gallery = Gallery()
    with app.app_context():
        db.session.add_all([User(username=f"u{i}", password_hash="x", face_encodings=[_vector(i)]) for i in range(3)])
        db.session.commit()
        gallery._apply_heard()  # everyone, as after the listener connects
        assert sorted(set(gallery._index.labels)) == [1, 2, 3]
        db.session.get(User, 2).face_encodings = [_vector(20)]
        db.session.delete(db.session.get(User, 3))
        db.session.commit()
        for payload in ("faces:2", "delete:3"):
            gallery.notified(payload)
        gallery._apply_heard()
        index = gallery._index
        assert sorted(set(index.labels)) == [1, 2] and index.identify(_vector(20)).label == 2
        assert index.identify(_vector(1)).distance > 0.5


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        ({"SQLALCHEMY_DATABASE_URI": "sqlite:///site.sqlite"}, None),
        (
            {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://k:pw@db:5432/site?sslmode=require"},
            "postgresql://k:pw@db:5432/site?sslmode=require",
        ),
        (
            {
                "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://k:pw@pgbouncer/site",
                "GALLERY_LISTEN_URL": "postgresql+psycopg://k:pw@db/site",
            },
            "postgresql://k:pw@db/site",
        ),
    ],
)
def test_the_listener_connects_straight_to_postgresql(settings, url):
    assert gallery_module.listen_url(settings) == url


def test_a_login_is_refused_when_the_stored_face_no_longer_matches(app, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    with app.app_context():
        grace = User.by_username("grace")
        encoding = np.asarray(grace.templates()[0])
        assert still_matches(grace.id, encoding, 0.1)
        grace.face_encodings = []  # a face reset that this process's index has not seen yet
        db.session.commit()
        assert not still_matches(grace.id, encoding, 0.6)
        assert not still_matches(grace.id + 1, encoding, 0.6)  # a deleted user has no templates


def test_enrolling_on_sqlite_holds_the_write_lock(app):
    other = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"), timeout=0)
    with app.app_context():
        with enrolling():
            # Another process cannot enrol between this one's check and its insert.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("DELETE FROM users")
            db.session.rollback()
        other.execute("DELETE FROM users")  # the lock went with the transaction
    other.close()
