"""Registration: each refusal has its status and message, and leaves nothing behind; REGISTRATION says who may."""

import re

import pytest

from facelogin.services.enrolment import FACE_REFUSED, REGISTRATION_BY_STAFF, REGISTRATION_CLOSED


class _Thumbnail(str):
    """Equal to any thumbnail's file name: 32 hex digits and .jpg."""

    def __eq__(self, other):
        return bool(re.fullmatch(r"[0-9a-f]{32}\.jpg", other))

    __hash__ = str.__hash__


ANY_THUMBNAIL = _Thumbnail("<32 hex digits>.jpg")


def _error(response):
    """Return the page's error line."""
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', response.get_data(as_text=True))
    return found.group(1) if found else None


def test_register_stores_user_and_face_photo(app, kiosk, photos, stored_files, user_count):
    response = kiosk.register("grace", photos["grace"])
    assert response.status_code == 302
    assert user_count() == 1
    # The enrolled face crop and its template's thumbnail are kept; the uploaded original is not (KEEP_UPLOADS off).
    assert [f.rsplit("/", 2)[-2:] for f in stored_files()] == [["known_faces", "1.jpg"], ["1", ANY_THUMBNAIL]]


def test_keep_uploads_keeps_a_server_named_original(app, kiosk, photos, stored_files):
    app.config["KEEP_UPLOADS"] = True
    kiosk.register("grace", photos["grace"])
    uploads = [f for f in stored_files() if "/uploads/" in f]
    assert len(uploads) == 1 and not uploads[0].endswith("face.jpg")


@pytest.mark.parametrize(
    ("photo", "status", "message"),
    [
        ("no_face", 400, b"We could not find a face"),
        ("two_faces", 400, b"We found 2 faces - use a photo with only you in it"),
        ("tiny_face", 400, b"Your face is too small"),
        ("dark", 400, b"too dark"),
        ("not_an_image", 400, b"not a picture we can read"),
    ],
)
def test_bad_photo_is_refused(kiosk, media, photo, status, message, stored_files, user_count):
    response = kiosk.register("grace", media[photo])
    assert response.status_code == status
    assert message in response.data
    assert user_count() == 0 and stored_files() == []


def test_astronaut_mission_patch_counts_as_a_second_face(kiosk, photos, user_count):
    response = kiosk.register("eileen", photos["astronaut"])
    assert response.status_code == 400 and b"We found 2 faces" in response.data
    assert user_count() == 0


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("", "correct horse", b"Enter a username"),
        ("ab", "correct horse", b"Use 3 to 64 letters, digits"),
        ("x" * 65, "correct horse", b"Use 3 to 64 letters, digits"),
        ("bad name!", "correct horse", b"Use 3 to 64 letters, digits"),
        ("grace\n", "correct horse", b"Use 3 to 64 letters, digits"),
        ("grace", "", b"Enter a password"),
        ("grace", "short", b"Use 8 to 128 characters"),
        ("grace", "p" * 129, b"Use 8 to 128 characters"),
    ],
)
def test_bad_fields_are_refused(kiosk, photos, username, password, message, stored_files, user_count):
    response = kiosk.register(username, photos["grace"], password=password)
    assert response.status_code == 400 and message in response.data
    assert user_count() == 0 and stored_files() == []


def test_missing_photo_is_refused(client, user_count):
    response = client.post("/register", data={"username": "grace", "password": "correct horse"})
    assert response.status_code == 400 and b"Choose a photo of your face" in response.data
    assert user_count() == 0


@pytest.mark.parametrize("name", ["grace", "GRACE", "Grace"])
def test_taken_name_in_any_case(kiosk, photos, name, stored_files, user_count):
    kiosk.register("grace", photos["grace"])
    before = stored_files()
    response = kiosk.register(name, photos["luis"])
    assert response.status_code == 409 and b"That username is taken" in response.data
    assert user_count() == 1 and stored_files() == before


def test_known_face_gets_one_answer_on_every_path(kiosk, client, runner, media, photos, stored_files, user_count):
    kiosk.register("grace", photos["grace"])
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    before = stored_files()
    answers = [kiosk.register("hopper", media["grace_altered"])]
    kiosk.look(media["grace_altered"])  # Grace herself in front of the kiosk camera
    answers.append(client.post("/register/capture", data={"consent": "y"}))  # refused at once, before any name is asked
    kiosk.password_login("boss", "s3cret pass")  # an account with no face adds Grace's
    with open(media["grace_altered"], "rb") as f:
        answers.append(client.post("/protected/faces", data={"consent": "y", "photo": (f, "me.jpg")}))
    answers.append(client.post("/protected/faces/capture", data={"consent": "y"}))
    assert [(r.status_code, _error(r)) for r in answers] == [(400, FACE_REFUSED)] * 4
    assert not any(b"already registered" in r.data or b"another account" in r.data for r in answers)
    assert user_count() == 2 and stored_files() == before


@pytest.mark.parametrize("photo", ["no_face", "two_faces", "not_an_image"])
def test_bad_photo_answers_the_same_whatever_the_name(kiosk, photos, media, photo):
    kiosk.register("grace", photos["grace"])
    taken, free = kiosk.register("grace", media[photo]), kiosk.register("someone-new", media[photo])
    assert taken.status_code == free.status_code == 400
    assert _error(taken) == _error(free) and "username" not in _error(taken)


def test_registration_setting_is_checked(make_app):
    with pytest.raises(ValueError, match="REGISTRATION must be one of open, staff, closed"):
        make_app(REGISTRATION="invite")


def _admin(runner, kiosk):
    """Create the admin "boss" and log in with the password at the kiosk; return the session's (user, token)."""
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    kiosk.password_login("boss", "s3cret pass")
    with kiosk.client.session_transaction() as session:
        return session["user_id"], session["token"]


def test_staff_registration_refuses_without_an_admin(app, kiosk, client, photos, user_count):
    app.config["REGISTRATION"] = "staff"
    page = client.get("/register")
    assert page.status_code == 200 and REGISTRATION_BY_STAFF in page.get_data(as_text=True)
    assert b'type="file"' not in page.data and b"Staff: log in" in page.data
    assert b'href="/register"' not in client.get("/").data
    assert kiosk.register("grace", photos["grace"]).status_code == 403
    assert client.post("/register/capture", data={"consent": "y"}).status_code == 403
    kiosk.look(photos["grace"])
    assert client.post("/register/camera", data={"username": "grace", "password": "correct horse"}).status_code == 403
    assert user_count() == 0
    app.config["REGISTRATION"] = "open"
    kiosk.register("luis", photos["luis"])
    app.config["REGISTRATION"] = "staff"
    kiosk.password_login("luis", "correct horse")  # a user who is not an admin is not staff
    assert kiosk.register("grace", photos["grace"]).status_code == 403 and user_count() == 1


def test_staff_registration_works_with_an_admin_who_stays_logged_in(app, kiosk, client, runner, media, photos):
    app.config["REGISTRATION"] = "staff"
    admin = _admin(runner, kiosk)
    page = client.get("/register")
    assert b'type="file"' in page.data and b"stay logged in" in page.data
    assert b'href="/register"' in client.get("/").data
    response = kiosk.register("grace", photos["grace"])
    assert response.headers["Location"] == "/register"
    assert b"grace is registered" in client.get("/register").data
    kiosk.look(media["luis_frame"])
    client.post("/register/capture", data={"consent": "y"})
    response = client.post("/register/camera", data={"username": "luis", "password": "correct horse"})
    assert response.headers["Location"] == "/register"
    with client.session_transaction() as session:
        assert (session["user_id"], session["token"]) == admin
    assert client.get("/admin").status_code == 200
    client.post("/logout")
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_closed_registration_refuses_everyone(app, kiosk, client, runner, photos, user_count):
    app.config["REGISTRATION"] = "closed"
    page = client.get("/register")
    assert REGISTRATION_CLOSED in page.get_data(as_text=True) and b'type="file"' not in page.data
    for path in ("/", "/login"):
        assert b'href="/register"' not in client.get(path).data
    assert kiosk.register("grace", photos["grace"]).status_code == 403
    assert client.post("/register/capture", data={"consent": "y"}).status_code == 403
    _admin(runner, kiosk)
    assert kiosk.register("grace", photos["grace"]).status_code == 403
    assert user_count() == 1  # the admin only


def test_too_large_upload_gives_413(app, client, user_count, stored_files):
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    body = {
        "username": "grace",
        "password": "correct horse",
        "photo": (__import__("io").BytesIO(b"\xff" * (2 * 1024 * 1024)), "big.jpg"),
    }
    response = client.post("/register", data=body, content_type="multipart/form-data")
    assert response.status_code == 413 and b"too large" in response.data
    assert user_count() == 0 and stored_files() == []


def test_missing_csrf_token_is_refused(app, kiosk, photos, user_count, stored_files):
    app.config["WTF_CSRF_ENABLED"] = True
    response = kiosk.register("grace", photos["grace"])
    assert response.status_code == 400 and b"This page has expired" in response.data
    assert user_count() == 0 and stored_files() == []


def test_register_with_csrf_token_from_the_form(app, client, photos, user_count):
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/register").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    with open(photos["grace"], "rb") as f:
        data = {
            "csrf_token": token,
            "username": "grace",
            "password": "correct horse",
            "consent": "y",
            "photo": (f, "a.jpg"),
        }
        response = client.post("/register", data=data, content_type="multipart/form-data")
    assert response.status_code == 302 and user_count() == 1


def test_failed_face_photo_write_leaves_nothing(app, kiosk, photos, stored_files, user_count, monkeypatch):
    from facelogin.services import storage

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage, "write_atomically", disk_full)
    response = kiosk.register("grace", photos["grace"])
    assert response.status_code == 503 and b"could not save" in response.data
    assert user_count() == 0 and stored_files() == []


def test_failed_commit_leaves_no_face_photo(app, kiosk, photos, stored_files, user_count, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from models import db

    def locked():
        raise OperationalError("COMMIT", {}, Exception("database is locked"))

    monkeypatch.setattr(db.session, "commit", locked)
    response = kiosk.register("grace", photos["grace"])
    monkeypatch.undo()
    assert response.status_code == 503 and b"try again" in response.data
    assert user_count() == 0 and stored_files() == []


def test_refused_registrations_are_rate_limited_per_address(app, kiosk, photos, clock):
    app.config["REGISTER_RATE_LIMIT"] = 2

    def register(name, photo, address="10.0.0.3"):
        with open(photos[photo], "rb") as f:
            data = {"username": name, "password": "correct horse", "consent": "y", "photo": (f, "face.jpg")}
            return kiosk.client.post("/register", data=data, environ_base={"REMOTE_ADDR": address})

    assert register("grace", "grace").status_code == register("luis", "luis").status_code == 302  # never counted
    assert [register(f"probe{i}", "grace").status_code for i in range(3)] == [400, 400, 429]
    limited = register("probe", "grace")
    assert limited.status_code == 429 and "please wait 600 seconds" in _error(limited)
    assert register("probe", "grace", address="10.0.0.4").status_code == 400  # another kiosk is not held up
    clock.advance(601)
    assert register("probe", "grace").status_code == 400


# --- light on the face and the enrolment quality gate -------------------------------------------


@pytest.fixture
def spoilt(photos, tmp_path):
    """Return a function writing a changed copy of a fixture photo to a file and giving its path."""
    import cv2

    from media import load_bgr

    def write(name, change):
        bgr = load_bgr(photos[name]) if name != "eileen" else _eileen(photos)
        path = str(tmp_path / f"{name}-{change.__name__}.jpg")
        cv2.imwrite(path, change(bgr))
        return path

    return write


def _eileen(photos):
    """The astronaut's face without her mission patch, at twice its size."""
    import cv2

    from media import load_bgr

    return cv2.resize(load_bgr(photos["astronaut"])[20:260, 100:340], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("frame", ["letterbox", "on_stage"])
def test_a_well_lit_face_in_a_dark_frame_registers_and_logs_in(kiosk, spoilt, frame, tmp_path):
    import media

    response = kiosk.register("grace", spoilt("grace", getattr(media, frame)))
    assert response.status_code == 302, _error(response)
    still = media.on_stage(media.alter(media.load_bgr(media.photo_paths()["grace"]), angle=3, gain=0.9, quality=70))
    kiosk.look(media.write_video(tmp_path / "stage.avi", [still] * 6))
    assert kiosk.face_login().headers["Location"] == "/protected"


def _blurred(bgr):
    from media import blur_face

    return blur_face(bgr, 2.0)


def _turned(bgr):
    from media import render_head

    return render_head(bgr, -30, 0)


def _shaded(bgr):
    from media import shade_half

    return shade_half(bgr)


def _dimmed(bgr):
    from media import alter

    return alter(bgr, gain=0.15)


def _shut(bgr):
    from media import close_eyes

    return close_eyes(bgr)


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("grace", _blurred, "Hold still - the photo is blurred"),
        ("luis", _turned, "Turn to face the camera"),
        ("eileen", _shut, "Open your eyes"),
        ("grace", _shaded, "Face the light - one side of your face is in shadow"),
        ("grace", _dimmed, "Your face is too dark in the photo - face the light"),
    ],
)
def test_a_poor_photo_is_refused_with_what_to_change(kiosk, spoilt, name, change, message, user_count, stored_files):
    response = kiosk.register(name, spoilt(name, change))
    assert response.status_code == 400 and _error(response).startswith(message)
    assert user_count() == 0 and stored_files() == []


def test_adding_a_poor_photo_is_refused_too(kiosk, photos, spoilt, app):
    from models import User, db

    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    with open(spoilt("grace", _blurred), "rb") as f:
        response = kiosk.client.post(
            "/protected/faces", data={"photo": (f, "face.jpg")}, content_type="multipart/form-data"
        )
    assert response.status_code == 400 and b"Hold still - the photo is blurred" in response.data
    with app.app_context():
        assert len(db.session.execute(db.select(User)).scalar_one().face_encodings) == 1


def test_enrol_jitters_reach_enrolment_encodings_and_never_login_frames(app, kiosk, photos, media, monkeypatch):
    from facelogin.engine import faces

    real, calls = faces.encode_face, []

    def spy(rgb, box, jitters=1):
        calls.append(jitters)
        return real(rgb, box, jitters)

    monkeypatch.setattr(faces, "encode_face", spy)
    app.config["ENROL_JITTERS"] = 3
    assert kiosk.register("grace", photos["grace"]).status_code == 302
    assert calls == [3]
    calls.clear()
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().headers["Location"] == "/protected"
    assert calls and set(calls) == {1}  # every login frame: one encoding, no jitter
    calls.clear()
    with open(media["grace_altered"], "rb") as f:
        response = kiosk.client.post("/protected/faces", data={"photo": (f, "face.jpg")})
    assert response.status_code == 302 and calls == [3]


def test_the_form_names_the_photo_formats_it_takes(client):
    page = client.get("/register").data
    assert b'accept="image/jpeg,image/png,image/webp"' in page and b"a JPEG, PNG or WebP photo" in page
