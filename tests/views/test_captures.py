"""Kiosk-camera photos are checked when taken: a bad one is refused at once, a good one is shown to confirm."""

import io
import re

import cv2
import pytest

from facelogin.services.enrolment import FACE_REFUSED
from models import LoginAttempt, User, db

USER = {"username": "grace", "password": "correct horse"}


def _error(response):
    """Return the page's error line."""
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', response.get_data(as_text=True))
    return found.group(1) if found else None


@pytest.fixture
def blurred(media, tmp_path):
    """A camera picture of Grace, out of focus: the enrolment quality gate refuses it."""
    from media import blur_face

    path = str(tmp_path / "blurred.jpg")
    cv2.imwrite(path, blur_face(cv2.imread(media["grace_altered"]), 2.0))
    return path


@pytest.mark.parametrize(
    ("picture", "message"),
    [
        ("no_face", "We could not find a face"),
        ("two_faces", "We found 2 faces - use a photo with only you in it"),
        ("dark", "Your face is too dark in the photo"),
        ("tiny_face", "Your face is too small in the photo"),
    ],
)
def test_a_bad_kiosk_photo_is_refused_before_any_name_is_asked(kiosk, client, media, picture, message, stored_files):
    kiosk.look(media[picture])
    response = client.post("/register/capture", data={"consent": "y"})
    assert response.status_code == 400 and message in _error(response)
    assert b"Take photo with the kiosk camera" in response.data  # the register page, to try again
    assert b"Register with this photo" not in response.data
    assert stored_files() == []  # nothing kept of a refused photo
    assert client.get("/register/camera").headers["Location"] == "/register"


def test_the_quality_gate_refuses_a_blurred_kiosk_photo(kiosk, client, blurred, stored_files):
    kiosk.look(blurred)
    response = client.post("/register/capture", data={"consent": "y"})
    assert response.status_code == 400 and "Hold still - the photo is blurred" in _error(response)
    assert stored_files() == []


def test_an_enrolled_face_gets_the_neutral_refusal_at_once_and_is_recorded(
    app, kiosk, client, media, photos, stored_files
):
    kiosk.register("grace", photos["grace"])
    before = stored_files()
    kiosk.look(media["grace_altered"])
    response = client.post("/register/capture", data={"consent": "y"})
    assert (response.status_code, _error(response)) == (400, FACE_REFUSED)
    assert stored_files() == before
    with app.app_context():
        (row,) = db.session.execute(db.select(LoginAttempt).where(LoginAttempt.outcome == "conflict")).scalars()
        assert (row.mode, row.reason, row.matched_user_id, row.client_addr) == ("register-camera", "", 1, "127.0.0.1")


def test_refused_kiosk_photos_count_against_the_register_limit_and_good_ones_do_not(app, kiosk, client, media, clock):
    app.config["REGISTER_RATE_LIMIT"] = 2
    kiosk.look(media["grace_altered"])
    assert [client.post("/register/capture", data={"consent": "y"}).status_code for _ in range(3)] == [
        302
    ] * 3  # never counted
    kiosk.look(media["two_faces"])
    assert [client.post("/register/capture", data={"consent": "y"}).status_code for _ in range(3)] == [400, 400, 429]
    kiosk.look(media["grace_altered"])
    limited = client.post("/register/capture", data={"consent": "y"})
    assert limited.status_code == 429 and "please wait" in _error(limited)
    clock.advance(601)
    assert client.post("/register/capture", data={"consent": "y"}).headers["Location"] == "/register/camera"


def test_browser_frames_are_checked_at_once_too(app, client, media, stored_files):
    app.config["CAMERA_MODE"] = "browser"
    for picture, status in (("two_faces", 400), ("no_face", 400), ("grace_altered", 302)):
        with open(media[picture], "rb") as f:
            response = client.post(
                "/register/capture", data={"consent": "y", "frame": (io.BytesIO(f.read()), "frame.jpg")}
            )
        assert response.status_code == status, picture
    assert len(stored_files()) == 1 and response.headers["Location"] == "/register/camera"


def test_the_confirmation_checks_again_that_the_face_is_new(app, kiosk, client, media, photos, user_count):
    kiosk.look(media["grace_altered"])
    assert client.post("/register/capture", data={"consent": "y"}).headers["Location"] == "/register/camera"
    with open(photos["grace"], "rb") as f:  # meanwhile, somewhere else, a photo of Grace is registered
        app.test_client().post(
            "/register", data={"username": "squatter", "password": "correct horse", "consent": "y", "photo": f}
        )
    refused = client.post("/register/camera", data=USER)
    assert (refused.status_code, _error(refused)) == (400, FACE_REFUSED) and user_count() == 1
    with app.app_context():
        rows = db.session.execute(db.select(LoginAttempt).where(LoginAttempt.outcome == "conflict")).scalars()
        assert [(r.mode, r.reason) for r in rows] == [("register-camera", "grace")]


# --- adding a photo with the kiosk camera, on the user's own page ------------------------------


def _template_count(app):
    with app.app_context():
        return len(User.by_username("grace").templates())


def test_a_kiosk_photo_is_shown_before_it_is_added(app, grace_in, media, stored_files):
    client = grace_in.client
    grace_in.look(media["grace_altered"])
    assert client.post("/protected/faces/capture").headers["Location"] == "/protected/faces/camera"
    page = client.get("/protected/faces/camera")
    assert page.status_code == 200 and b'src="/protected/faces/camera/photo"' in page.data
    assert b"Add this photo" in page.data and b"Take another photo" in page.data
    photo = client.get("/protected/faces/camera/photo")
    assert photo.mimetype == "image/jpeg" and photo.headers["Cache-Control"] == "no-store"
    assert _template_count(app) == 1  # nothing added yet
    assert client.post("/protected/faces/camera").headers["Location"] == "/protected"
    assert _template_count(app) == 2 and b"Photo added" in client.get("/protected").data
    assert not [f for f in stored_files() if "/captures/" in f]  # the kiosk photo went once added
    assert client.get("/protected/faces/camera").headers["Location"] == "/protected"


def test_take_another_throws_the_kiosk_photo_away(app, grace_in, media, stored_files):
    grace_in.look(media["grace_altered"])
    grace_in.client.post("/protected/faces/capture")
    assert grace_in.client.post("/protected/faces/camera/discard").headers["Location"] == "/protected"
    assert not [f for f in stored_files() if "/captures/" in f] and _template_count(app) == 1
    assert grace_in.client.post("/protected/faces/camera").headers["Location"] == "/protected"
    assert _template_count(app) == 1


@pytest.mark.parametrize(
    ("picture", "message"),
    [("two_faces", "We found 2 faces"), ("luis_frame", "does not look like your other photos")],
)
def test_a_bad_photo_to_add_is_refused_at_once(app, grace_in, media, picture, message, stored_files):
    before = stored_files()
    grace_in.look(media[picture])
    response = grace_in.client.post("/protected/faces/capture")
    assert response.status_code == 400 and message in _error(response)
    assert stored_files() == before and _template_count(app) == 1


def test_the_photo_to_add_is_this_sessions_and_never_a_registration_photo(app, grace_in, media):
    grace_in.look(media["luis_frame"])
    grace_in.client.post(
        "/register/capture", data={"consent": "y"}
    )  # Luis's registration photo, taken while Grace is logged in
    assert grace_in.client.get("/protected/faces/camera").headers["Location"] == "/protected"
    grace_in.look(media["grace_altered"])
    grace_in.client.post("/protected/faces/capture")
    assert app.test_client().get("/protected/faces/camera/photo").status_code == 302  # to the login page
    assert grace_in.client.get("/register/camera/photo").status_code == 200  # Luis's is still his own


def test_browser_mode_offers_the_camera_on_the_users_page(app, grace_in, media):
    app.config["CAMERA_MODE"] = "browser"
    page = grace_in.client.get("/protected").get_data(as_text=True)
    assert "data-camera-video" in page and 'action="/protected/faces/capture"' in page
    assert re.search(r'<form [^>]*action="/protected/faces/capture"[^>]*data-capture-form', page)
    with open(media["grace_altered"], "rb") as f:
        response = grace_in.client.post("/protected/faces/capture", data={"frame": (f, "frame.jpg")})
    assert response.headers["Location"] == "/protected/faces/camera"
