"""The person's own data on /protected: delete the face data, delete the account, download it; the purge notice."""

import json
from datetime import timedelta

import pytest
from driver import Kiosk, register_kiosk

from facelogin.services import sessions
from facelogin.services.gallery import get_gallery
from models import LearnedTemplate, LoginAttempt, User, db, utcnow


def _user(app, name):
    with app.app_context():
        return User.by_username(name)


def _templates(app, name):
    with app.app_context():
        return User.by_username(name).templates()


@pytest.fixture
def both(grace_in, photos):
    """Grace logged in at the kiosk, Luis registered too."""
    grace_in.register("luis", photos["luis"])
    return grace_in


def test_delete_my_face_data_asks_first_then_face_login_is_refused(app, both, stored_files):
    page = both.client.get("/protected")
    assert b"Delete my face data" in page.data and b"Delete my account" in page.data
    confirm = both.client.get("/protected/face/delete")
    assert confirm.status_code == 200 and b"Delete your face data?" in confirm.data
    assert _templates(app, "grace")  # asking deleted nothing
    response = both.client.post("/protected/face/delete")
    assert response.headers["Location"] == "/protected"
    assert b"Your face data was deleted" in both.client.get("/protected").data
    assert _templates(app, "grace") == [] and _user(app, "grace").password_hash
    assert {f.rsplit("/", 2)[-2] for f in stored_files()} == {"known_faces", "2"}  # only Luis's
    both.client.post("/logout")
    assert both.face_login().status_code == 401
    assert both.password_login("grace", "correct horse").headers["Location"] == "/protected"


def test_delete_my_account_needs_the_password(app, both, user_count, stored_files):
    assert b"Your password" in both.client.get("/protected/delete").data
    wrong = both.client.post("/protected/delete", data={"password": "not it at all"})
    assert wrong.status_code == 401 and user_count() == 2
    response = both.client.post("/protected/delete", data={"password": "correct horse"})
    assert response.headers["Location"] == "/"
    assert b"Your account and all its face data were deleted" in both.client.get("/").data
    assert user_count() == 1 and _user(app, "grace") is None
    assert {f.rsplit("/", 2)[-2] for f in stored_files()} == {"known_faces", "2"}
    assert both.client.get("/protected").status_code == 302  # logged out
    assert both.face_login().status_code == 401
    with app.app_context():
        rows = db.session.scalars(db.select(LoginAttempt)).all()
        assert rows and all(r.claimed_user_id is None and r.matched_user_id is None for r in rows)


def test_the_actions_need_a_login_and_csrf(app, client, grace_in):
    app.config["WTF_CSRF_ENABLED"] = True
    assert grace_in.client.post("/protected/face/delete").status_code == 400
    assert grace_in.client.post("/protected/delete", data={"password": "correct horse"}).status_code == 400
    assert _templates(app, "grace")
    app.config["WTF_CSRF_ENABLED"] = False
    grace_in.client.post("/logout")
    for path in ("/protected/face/delete", "/protected/delete", "/protected/data.json"):
        assert grace_in.client.get(path).status_code == 302


@pytest.mark.parametrize("action", ["face", "account"])
def test_another_process_with_an_older_gallery_cannot_log_the_erased_face_in(make_app, app, both, action, monkeypatch):
    other = make_app()  # a second server process on the same database
    other_kiosk = Kiosk(other, other.test_client())
    register_kiosk(other, other_kiosk.client)
    assert other_kiosk.face_login().headers["Location"] == "/protected"  # its gallery knows Grace
    other_kiosk.client.post("/logout")
    with other.app_context():
        stale = get_gallery().index()
    # Its gallery is not told (a lost notification, a poll not yet due): it keeps the index it built.
    monkeypatch.setattr(other.extensions["face_gallery"], "index", lambda: stale)
    both.password_login("grace", "correct horse")  # her face login there ended this session
    if action == "face":
        both.client.post("/protected/face/delete")
    else:
        both.client.post("/protected/delete", data={"password": "correct horse"})
    assert 1 in set(stale.labels)
    refused = other_kiosk.face_login()
    assert refused.status_code == 401 and b"Face not recognised" in refused.data
    with other.app_context():
        last = db.session.scalars(db.select(LoginAttempt).order_by(LoginAttempt.id.desc())).first()
        assert (last.outcome, last.matched_user_id, last.distance, last.snapshot) == ("failure", None, None, None)


def test_download_my_data_is_a_private_attachment_of_ones_own(app, grace_in, stranger, photos):
    grace_in.register("luis", photos["luis"])
    at_kiosk = grace_in.client.get("/protected/data.json")
    assert at_kiosk.status_code == 409 and b"on your own phone or computer" in at_kiosk.data
    Kiosk(app, stranger).password_login("grace", "correct horse")
    response = stranger.get("/protected/data.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.data)
    assert data["account"]["username"] == "grace" and data["face"]["enrolled_templates"] == 1
    assert "enrolled_template_numbers" not in data["face"]
    assert {a["outcome"] for a in data["login_attempts"]} == {"success"}  # her two password logins
    assert len(data["login_attempts"]) == 2
    full = json.loads(stranger.get("/protected/data.json?with=templates").data)
    assert len(full["face"]["enrolled_template_numbers"][0]) == 128


def test_the_next_password_login_tells_of_a_purge(app, runner, grace_in, monkeypatch):
    grace_in.client.post("/logout")
    later = utcnow() + timedelta(days=400)
    monkeypatch.setattr("facelogin.services.attempts.clock", lambda: later)
    result = runner.invoke(args=["faces", "purge"])
    assert result.exit_code == 0 and "deleted the face data of 1 accounts" in result.output
    assert grace_in.face_login().status_code == 401
    monkeypatch.setattr(sessions, "clock", lambda: later)
    grace_in.password_login("grace", "correct horse")
    page = grace_in.client.get("/protected").data
    assert b"Your face data was deleted after 365 days without a login" in page
    grace_in.client.post("/logout")
    grace_in.password_login("grace", "correct horse")
    assert b"was deleted after" not in grace_in.client.get("/protected").data  # told once


def test_admin_sees_who_is_due_and_the_last_purge(app, runner, kiosk, photos, monkeypatch):
    kiosk.register("grace", photos["grace"])
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    kiosk.password_login("boss", "s3cret pass")
    page = kiosk.client.get("/admin").data
    assert b"Face data retention" in page and b"No account is due" in page
    monkeypatch.setattr("facelogin.services.attempts.clock", lambda: utcnow() + timedelta(days=366))
    page = kiosk.client.get("/admin").get_data(as_text=True)
    assert "1 account due" in page and "<td>grace</td>" in page and "not deleted any face data yet" in page
    runner.invoke(args=["faces", "purge"])
    page = kiosk.client.get("/admin").get_data(as_text=True)
    assert "No account is due" in page and "It last deleted face data on" in page


def test_admin_delete_goes_through_the_same_erasure(app, runner, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    with app.app_context():
        grace = User.by_username("grace")
        db.session.add(LearnedTemplate(user_id=grace.id, encoding=[grace.templates()[0]], distance=0.1))
        db.session.add(LoginAttempt(mode="face", outcome="success", client_addr="10.1.1.1", matched_user_id=grace.id))
        db.session.commit()
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    kiosk.password_login("boss", "s3cret pass")
    kiosk.client.post("/admin/users/1/delete")
    with app.app_context():
        assert db.session.scalars(db.select(LearnedTemplate)).all() == []
        row = db.session.scalars(db.select(LoginAttempt).where(LoginAttempt.mode == "face")).one()
        assert (row.matched_user_id, row.client_addr) == (None, None)
