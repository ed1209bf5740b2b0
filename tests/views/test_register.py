"""Registration: each refusal has its status and message, and leaves nothing behind."""

import pytest


def test_register_stores_user_and_face_photo(app, kiosk, photos, stored_files, user_count):
    response = kiosk.register("grace", photos["grace"])
    assert response.status_code == 302
    assert user_count() == 1
    # The enrolled face crop is kept; the uploaded original is not (KEEP_UPLOADS off).
    assert [f.rsplit("/", 2)[-2:] for f in stored_files()] == [["known_faces", "1.jpg"]]


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


def test_face_already_enrolled_is_refused(kiosk, media, photos, stored_files, user_count):
    kiosk.register("grace", photos["grace"])
    before = stored_files()
    response = kiosk.register("grace2", media["grace_altered"])
    assert response.status_code == 409 and b"already registered" in response.data
    assert user_count() == 1 and stored_files() == before


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
        data = {"csrf_token": token, "username": "grace", "password": "correct horse", "photo": (f, "a.jpg")}
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


def test_the_form_names_the_photo_formats_it_takes(client):
    page = client.get("/register").data
    assert b'accept="image/jpeg,image/png,image/webp"' in page and b"a JPEG, PNG or WebP photo" in page
