"""The gallery: app processes sharing one database see each other's changes at once, read incrementally."""

import numpy as np
from driver import Kiosk, register_kiosk
from sqlalchemy import LargeBinary, type_coerce, update

from facelogin.services import gallery as gallery_module
from facelogin.services.gallery import Gallery, get_gallery
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
    monkeypatch.setattr(Gallery, "_load", lambda self, since=None, ids=None: loads.append(since) or real_load(self, since, ids))
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
