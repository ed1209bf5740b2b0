"""A thumbnail per face template, enrolled or learned: shown to its owner only, deleted with its template."""

import os
import stat

import cv2
import numpy as np
import pytest

from facelogin.services import thumbnails
from models import LearnedTemplate, User, db


def _pictures(app, user_id=1):
    """Return the thumbnail files of a user."""
    folder = os.path.join(app.config["KNOWN_FACES_FOLDER"], str(user_id))
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _decode(response):
    return cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)


def test_each_photo_is_shown_by_a_thumbnail_to_its_owner_only(app, kiosk, grace_in, media, photos):
    grace_in.add_photo(media["grace_altered"])
    page = grace_in.client.get("/protected").get_data(as_text=True)
    assert 'src="/protected/faces/1/picture"' in page and 'src="/protected/faces/2/picture"' in page
    picture = grace_in.client.get("/protected/faces/2/picture")
    assert picture.mimetype == "image/jpeg" and picture.headers["Cache-Control"] == "no-store"
    assert max(_decode(picture).shape[:2]) <= thumbnails.SIDE
    assert grace_in.client.get("/protected/faces/3/picture").status_code == 404
    other = app.test_client()
    assert other.get("/protected/faces/1/picture").headers["Location"].startswith("/login")
    kiosk.register("luis", photos["luis"])
    luis = kiosk.app.test_client()
    luis.post("/login/password", data={"username": "luis", "password": "correct horse"})
    assert luis.get("/protected/faces/2/picture").status_code == 404  # Luis has one photo: Grace's stay hers
    assert luis.get("/protected/faces/1/picture").data != grace_in.client.get("/protected/faces/1/picture").data


def test_thumbnails_are_private_files(app, grace_in):
    folder = os.path.join(app.config["KNOWN_FACES_FOLDER"], "1")
    (name,) = _pictures(app)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode) == 0o600


def test_removing_a_photo_removes_its_thumbnail_only(app, grace_in, media):
    first = _pictures(app)
    grace_in.add_photo(media["grace_altered"])
    assert len(_pictures(app)) == 2
    grace_in.client.post("/protected/faces/2/delete")
    assert _pictures(app) == first
    grace_in.add_photo(media["grace_altered"])
    grace_in.client.post("/protected/faces/1/delete")  # the first goes; the new one is now photo 1
    assert len(_pictures(app)) == 1 and _pictures(app) != first
    assert grace_in.client.get("/protected/faces/1/picture").status_code == 200


def test_a_photo_from_before_thumbnails_shows_no_picture_with_the_same_label(app, grace_in):
    os.remove(os.path.join(app.config["KNOWN_FACES_FOLDER"], "1", _pictures(app)[0]))
    page = grace_in.client.get("/protected").get_data(as_text=True)
    assert '<span class="thumb none">No picture</span>' in page and "Photo 1" in page
    assert 'src="/protected/faces/1/picture"' not in page
    assert grace_in.client.get("/protected/faces/1/picture").status_code == 404


@pytest.fixture
def learned(app, kiosk, photos, blink_media):
    """Grace, registered, then logged in by a live face login that was learned; the kiosk is logged in as her."""
    app.config["LIVENESS"] = "blink"  # a live login learns
    kiosk.register("grace", photos["grace"])
    kiosk.look(blink_media["grace_blinks"])
    assert kiosk.face_login().headers["Location"] == "/protected"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(LearnedTemplate.id))) == 1
    return kiosk


def test_a_learned_template_has_a_thumbnail_removed_with_it(app, learned, photos):
    page = learned.client.get("/protected").get_data(as_text=True)
    assert 'src="/protected/learned/1/picture"' in page and len(_pictures(app)) == 2
    assert learned.client.get("/protected/learned/1/picture").mimetype == "image/jpeg"
    learned.client.post("/logout")
    learned.register("luis", photos["luis"])
    learned.password_login("luis", "correct horse")
    assert learned.client.get("/protected/learned/1/picture").status_code == 404  # not his
    learned.client.post("/logout")
    learned.password_login("grace", "correct horse")
    learned.client.post("/protected/learned/1/delete")
    assert len(_pictures(app)) == 1  # the enrolled photo's
    assert learned.client.get("/protected/learned/1/picture").status_code == 404


def test_a_learned_thumbnail_goes_when_a_newer_login_takes_its_slot(app, learned, photos):
    from facelogin.engine import faces
    from facelogin.services import learning

    app.config["LEARN_SLOTS"] = 1
    with app.app_context(), open(photos["grace"], "rb") as f:
        user = User.by_username("grace")
        (old,) = db.session.execute(db.select(LearnedTemplate)).scalars()
        old_picture = thumbnails.path(user.id, old.template())
        assert os.path.isfile(old_picture)
        rgb = faces.read_image(f.read())
        box = faces.find_single_face(rgb, detect_width=1024).box
        nudged = np.asarray(user.templates()[0]) + 0.005  # a later login of Grace: other numbers, as near
        login = faces.Decision(user.id, "match", 0.06, 1.0, 4, 2, rgb, liveness="passed", encoding=nudged, box=box)
        assert learning.learn_from_login(user, login) is not None
        assert not os.path.exists(old_picture) and thumbnails.has(user.id, nudged.tolist())
    assert len(_pictures(app)) == 2  # the enrolled photo's and the new learned one's


def test_a_learned_thumbnail_goes_when_removing_a_photo_prunes_it(app, learned, media):
    learned.add_photo(media["grace_altered"])
    assert len(_pictures(app)) == 3
    app.config["LEARN_MAX_DISTANCE"] = 0.0  # no learned template is near enough to what is left
    learned.client.post("/protected/faces/2/delete")
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(LearnedTemplate.id))) == 0
    assert len(_pictures(app)) == 1


@pytest.mark.parametrize("how", ["admin delete", "admin reset", "flask users delete"])
def test_every_thumbnail_goes_with_the_user_or_their_face(app, learned, runner, how):
    assert len(_pictures(app)) == 2
    learned.client.post("/logout")
    if how == "flask users delete":
        runner.invoke(args=["users", "delete", "grace"], input="y\n")
    else:
        runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
        learned.password_login("boss", "s3cret pass")
        action = "delete" if how == "admin delete" else "reset-face"
        assert learned.client.post(f"/admin/users/1/{action}").headers["Location"] == "/admin"
    assert _pictures(app) == [] and not os.path.exists(os.path.join(app.config["KNOWN_FACES_FOLDER"], "1"))


def test_the_importer_keeps_a_thumbnail_per_template(app, runner, people_dir):
    runner.invoke(args=["faces", "import", people_dir, "--consent", "paper-2026", "--workers", "1"])
    with app.app_context():
        users = db.session.execute(db.select(User)).scalars().all()
        assert users and all(len(_pictures(app, u.id)) == len(u.templates()) for u in users)
        assert all(thumbnails.has(u.id, t) for u in users for t in u.templates())


def test_a_thumbnail_that_cannot_be_written_leaves_no_user_and_no_file(app, kiosk, photos, monkeypatch, stored_files):
    from facelogin.services import storage

    real_write = storage.write_atomically

    def thumbnails_denied(path, data):
        if os.path.dirname(path) == thumbnails.folder(1):
            raise PermissionError(13, "Permission denied", path)
        real_write(path, data)

    monkeypatch.setattr(storage, "write_atomically", thumbnails_denied)
    response = kiosk.register("grace", photos["grace"])
    assert response.status_code == 503 and b"could not save your registration" in response.data
    assert stored_files() == [] and os.listdir(app.config["KNOWN_FACES_FOLDER"]) == []
