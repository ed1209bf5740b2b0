"""Consent at enrolment: every face path needs the box ticked, keeps nothing without it, and records it."""

import re
from datetime import timedelta

import pytest

from facelogin.services import consent
from facelogin.services.gallery import get_gallery
from models import User, db, utcnow


def _error(response):
    """Return the page's error line."""
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', response.get_data(as_text=True))
    return found.group(1) if found else None


def _user(app, name="grace"):
    """Return (consent version, consented at, template count) of user `name`."""
    with app.app_context():
        user = User.by_username(name)
        return user.consent_version, user.consented_at, len(user.templates())


def _version(app):
    with app.app_context():
        return consent.current_version()


@pytest.mark.parametrize("ticked", [None, "", "false", "no"])
def test_registering_with_a_photo_file_needs_the_box_ticked(kiosk, photos, stored_files, user_count, ticked):
    response = kiosk.register("grace", photos["grace"], consent=ticked)
    assert (response.status_code, _error(response)) == (400, consent.REFUSED)
    assert "none was taken" in consent.REFUSED and "register without face login" in consent.REFUSED
    assert user_count() == 0 and stored_files() == []  # not even the staged upload


def test_without_consent_the_photo_is_not_even_read(kiosk, media, user_count):
    # A photo with no face would be refused for that; unticked, the answer is the consent one.
    response = kiosk.register("grace", media["no_face"], consent=None)
    assert _error(response) == consent.REFUSED and user_count() == 0


def test_registration_records_the_notice_version_and_the_time(app, kiosk, photos):
    before = utcnow()
    assert kiosk.register("grace", photos["grace"]).status_code == 302
    version, at, count = _user(app)
    assert version == _version(app) == "2026-11-26" and count == 1
    assert before - timedelta(seconds=1) <= at.replace(tzinfo=before.tzinfo) <= utcnow()


def test_the_kiosk_camera_takes_no_photo_without_consent(app, kiosk, client, media, stored_files, monkeypatch):
    from facelogin.services import enrolment

    taken = []
    monkeypatch.setattr(enrolment, "take_photo", lambda posted=(): taken.append(1))
    kiosk.look(media["grace_altered"])
    refused = client.post("/register/capture")
    assert (refused.status_code, _error(refused)) == (400, consent.REFUSED)
    assert taken == [] and stored_files() == []
    assert client.get("/register/camera").headers["Location"] == "/register"


def test_the_kiosk_photo_registers_with_the_consent_given_at_capture(app, kiosk, client, media):
    kiosk.look(media["grace_altered"])
    assert client.post("/register/capture", data={"consent": "y"}).headers["Location"] == "/register/camera"
    page = client.get("/register/camera").get_data(as_text=True)
    assert "You agreed, when you took it" in page and 'id="consent-notice"' in page
    response = client.post("/register/camera", data={"username": "grace", "password": "correct horse"})
    assert response.headers["Location"] == "/login"
    assert _user(app)[0] == _version(app)


def test_an_unticked_retake_throws_the_earlier_photo_away(app, kiosk, client, media, stored_files, user_count):
    kiosk.look(media["grace_altered"])
    client.post("/register/capture", data={"consent": "y"})
    assert len(stored_files()) == 1
    assert client.post("/register/capture").status_code == 400  # changed their mind
    assert stored_files() == []
    response = client.post("/register/camera", data={"username": "grace", "password": "correct horse"})
    assert response.headers["Location"] == "/register" and user_count() == 0


def test_the_page_shows_the_notice_next_to_unticked_boxes(client):
    page = client.get("/register").get_data(as_text=True)
    assert 'id="consent-notice"' in page and "Register without face login" in page
    for what in ("What:", "Why:", "How long:", "Who sees it:", "Deleting it:", "365 days", "Delete my face data"):
        assert what in page, what
    boxes = re.findall(r'<input type="checkbox" name="consent"[^>]*>', page)
    assert len(boxes) == 2 and not any("checked" in box for box in boxes)  # the camera's and the file's


def test_the_notice_states_the_retention_setting(make_app):
    app = make_app(FACE_RETENTION_DAYS=0)
    with app.app_context():
        db.create_all()
    page = app.test_client().get("/register").get_data(as_text=True)
    assert 'id="consent-notice"' in page and "days after your last login" not in page


@pytest.mark.parametrize("days", [-1, 1.5, "365", True])
def test_a_wrong_retention_setting_is_refused(make_app, days):
    with pytest.raises(ValueError, match="FACE_RETENTION_DAYS"):
        make_app(FACE_RETENTION_DAYS=days)


# --- password-only accounts ------------------------------------------------------------------


def test_a_password_only_account_keeps_no_face_data_and_logs_in_with_its_password(
    app, kiosk, media, stored_files, user_count
):
    response = kiosk.register_password_only("grace")
    assert response.headers["Location"] == "/login" and user_count() == 1 and stored_files() == []
    assert _user(app) == (None, None, 0)
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().status_code == 401  # face login never matches it
    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"
    page = kiosk.client.get("/protected").get_data(as_text=True)
    assert "Face login is off for you" in page and 'id="consent-notice"' in page
    assert len(re.findall(r'name="consent"', page)) == 2  # the camera's and the file's


def test_password_only_registration_refuses_a_taken_name(kiosk):
    kiosk.register_password_only("grace")
    response = kiosk.register_password_only("GRACE")
    assert response.status_code == 409 and "taken" in _error(response)


def test_a_face_is_added_later_only_with_consent(app, kiosk, photos, stored_files):
    kiosk.register_password_only("grace")
    kiosk.password_login("grace", "correct horse")
    refused = kiosk.add_photo(photos["grace"])
    assert (refused.status_code, _error(refused)) == (400, consent.REFUSED_TO_ADD)
    assert kiosk.client.post("/protected/faces/capture").status_code == 400
    assert stored_files() == [] and _user(app) == (None, None, 0)
    assert kiosk.add_photo(photos["grace"], consent="y").headers["Location"] == "/protected"
    version, at, count = _user(app)
    assert version == _version(app) and at is not None and count == 1
    page = kiosk.client.get("/protected").get_data(as_text=True)
    assert "knows you from 1 photo" in page and 'name="consent"' not in page  # more photos: the same consent
    with app.app_context():
        assert get_gallery().index().labels == [1]


def test_a_kiosk_photo_is_added_with_the_consent_given_at_capture(app, kiosk, media):
    kiosk.register_password_only("grace")
    kiosk.password_login("grace", "correct horse")
    kiosk.look(media["grace_altered"])
    assert kiosk.client.post("/protected/faces/capture", data={"consent": "y"}).status_code == 302
    assert kiosk.client.post("/protected/faces/camera").headers["Location"] == "/protected"
    assert _user(app)[0] == _version(app) and _user(app)[2] == 1


def test_a_changed_notice_is_agreed_to_again_before_another_photo(app, grace_in, media, monkeypatch):
    monkeypatch.setattr(consent, "current_version", lambda: "2027-01-01")
    assert grace_in.add_photo(media["grace_altered"]).status_code == 400
    assert grace_in.add_photo(media["grace_altered"], consent="y").status_code == 302
    assert _user(app)[0] == "2027-01-01"


def test_password_only_accounts_show_on_the_admin_tools(app, kiosk, runner, photos):
    kiosk.register("luis", photos["luis"])
    kiosk.register_password_only("grace")
    listing = runner.invoke(args=["users", "list"]).output
    assert re.search(r"grace\s+user\s+0 ", listing), listing
    report = runner.invoke(args=["faces", "report"])
    assert report.exit_code == 0 and report.output.startswith("1 users, 1 templates")
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    kiosk.password_login("boss", "s3cret pass")
    admin = kiosk.client.get("/admin").get_data(as_text=True)
    assert admin.count("(face login off)") == 2  # grace, and the admin made without a face
