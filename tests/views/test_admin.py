"""/admin: admins only; every action asks first, then deletes, resets a face or re-enables."""

from datetime import timedelta

import pytest

from models import LoginAttempt, User, db, utcnow


@pytest.fixture
def admin(app, runner, kiosk, photos):
    """Grace and Luis registered, and the admin "boss" logged in with the password."""
    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    kiosk.password_login("boss", "s3cret pass")
    return kiosk.client


def _user(app, name):
    with app.app_context():
        return User.by_username(name)


def test_anonymous_go_to_login_and_users_are_refused(client, kiosk, photos):
    assert client.get("/admin").headers["Location"] == "/login?next=/admin"
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    for response in (
        client.get("/admin"),
        client.get("/admin/users/1/photo"),
        client.get("/admin/users/1/delete"),
        client.post("/admin/users/1/delete"),
    ):
        assert response.status_code == 403 and b"for administrators only" in response.data
    assert _user(client.application, "grace") is not None


def test_admin_page_lists_users_with_photos_and_attempts(app, admin):
    with app.app_context():
        db.session.add(
            LoginAttempt(
                at=utcnow(),
                mode="face",
                outcome="failure",
                reason="not_recognised",
                matched_user_id=None,
                claimed_user_id=1,
                distance=0.61,
                client_addr="127.0.0.1",
            )
        )
        db.session.commit()
    page = admin.get("/admin").get_data(as_text=True)
    assert 'src="/admin/users/1/photo"' in page and 'src="/admin/users/2/photo"' in page
    assert "boss" in page and "no photo" in page and "(face login off)" in page
    assert "face not recognised" in page and "not_recognised" not in page and "0.610" in page
    photo = admin.get("/admin/users/1/photo")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"


def test_delete_asks_first_then_removes_everything(app, admin, stored_files, user_count):
    page = admin.get("/admin/users/1/delete")
    assert page.status_code == 200 and b"Delete grace?" in page.data and user_count() == 3
    response = admin.post("/admin/users/1/delete")
    assert response.headers["Location"] == "/admin"
    assert _user(app, "grace") is None and user_count() == 2
    assert [f.split("/")[-2:][0] for f in stored_files()] == ["known_faces", "2"]  # 2.jpg, 2/<thumbnail>.jpg
    assert b"grace was deleted" in admin.get("/admin").data


def test_admin_cannot_delete_own_account(app, admin):
    response = admin.post("/admin/users/3/delete")
    assert response.status_code == 409 and _user(app, "boss") is not None
    offered = admin.get("/admin/users/3/delete")  # not even a confirmation page for it
    assert offered.status_code == 409 and b"cannot delete your own account" in offered.data
    assert b'action="/admin/users/3/delete"' not in offered.data
    assert b'<a class="button primary" href="/admin">Back to administration</a>' in offered.data
    assert b'href="/admin/users/3/delete"' not in admin.get("/admin").data


def test_an_anonymous_visit_to_admin_comes_back_after_login(app, runner, kiosk):
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    assert kiosk.client.get("/admin").headers["Location"] == "/login?next=/admin"
    login = kiosk.client.post("/login/password?next=/admin", data={"username": "boss", "password": "s3cret pass"})
    assert login.headers["Location"] == "/admin"


def test_the_attempt_log_speaks_plain_words(app, admin, kiosk, media):
    kiosk.look(media["empty_video"])
    assert kiosk.face_login().status_code == 401
    page = admin.get("/admin").get_data(as_text=True)
    log = page[page.index('id="attempts"') :]
    assert "no face seen" in log and "no_face" not in log


def test_reset_face_turns_face_login_off_until_a_new_photo(app, admin, kiosk, stored_files):
    assert b"Reset grace" in admin.get("/admin/users/1/reset-face").data
    admin.post("/admin/users/1/reset-face")
    with app.app_context():
        assert db.session.get(User, 1).face_encodings == []
    assert [f.split("/")[-2:][0] for f in stored_files()] == ["known_faces", "2"]  # 2.jpg, 2/<thumbnail>.jpg
    admin.post("/logout")
    response = kiosk.face_login()  # the camera shows Grace
    assert response.status_code == 401 and b"Face not recognised" in response.data
    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"


def test_unlock_clears_every_lock(app, admin):
    with app.app_context():
        grace = db.session.get(User, 1)
        later = utcnow() + timedelta(hours=1)
        grace.face_failures, grace.face_locked_until, grace.face_disabled = 60, later, True
        grace.password_failures, grace.password_locked_until = 7, later
        db.session.commit()
    assert b"locked" in admin.get("/admin").data
    admin.post("/admin/users/1/unlock")
    with app.app_context():
        grace = db.session.get(User, 1)
        assert (grace.face_failures, grace.face_locked_until, grace.face_disabled) == (0, None, False)
        assert (grace.password_failures, grace.password_locked_until) == (0, None)


def test_actions_need_csrf_and_a_known_action(app, admin, user_count):
    assert admin.post("/admin/users/1/promote").status_code == 404
    assert admin.get("/admin/users/99/delete").status_code == 404
    app.config["WTF_CSRF_ENABLED"] = True
    response = admin.post("/admin/users/1/delete")
    assert response.status_code == 400 and user_count() == 3


def test_after_a_face_reset_a_new_photo_turns_face_login_back_on(app, admin, kiosk, photos, stored_files):
    admin.post("/admin/users/1/reset-face")
    admin.post("/logout")
    kiosk.password_login("grace", "correct horse")
    with open(photos["grace"], "rb") as f:
        response = kiosk.client.post(
            "/protected/faces", data={"consent": "y", "photo": (f, "me.jpg")}, content_type="multipart/form-data"
        )
    assert response.headers["Location"] == "/protected"
    assert [f.split("/")[-1] for f in stored_files() if f.split("/")[-2] == "known_faces"] == ["1.jpg", "2.jpg"]
    assert len([f for f in stored_files() if f.split("/")[-2] == "1"]) == 1  # the new photo's thumbnail
    kiosk.client.post("/logout")
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_a_squatted_face_is_shown_and_the_reset_lets_its_owner_enrol(app, client, kiosk, runner, media, photos):
    squatter = app.test_client()  # somewhere else, with a photo of Grace
    with open(photos["grace"], "rb") as f:
        data = {"username": "grace", "password": "squatter pass", "consent": "y", "photo": (f, "her.jpg")}
        squatter.post("/register", data=data, environ_base={"REMOTE_ADDR": "192.0.2.66"})
    kiosk.look(media["grace_altered"])  # the real Grace, at the kiosk camera
    refused = client.post("/register/capture", data={"consent": "y"})  # refused at once: no name asked
    assert refused.status_code == 400 and b"please ask staff" in refused.data
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    kiosk.password_login("boss", "s3cret pass")
    conflicts = client.get("/admin").get_data(as_text=True).split('id="conflicts"')[1].split('id="attempts"')[0]
    assert "face already held by <strong>grace</strong>" in conflicts and 'src="/admin/users/1/photo"' in conflicts
    assert "no name yet" in conflicts and "kiosk camera" in conflicts and "127.0.0.1" in conflicts
    assert 'href="/admin/users/1/reset-face"' in conflicts
    app.config["WTF_CSRF_ENABLED"] = True
    assert client.post("/admin/users/1/reset-face").status_code == 400  # CSRF, as every admin action
    app.config["WTF_CSRF_ENABLED"] = False
    assert client.post("/admin/users/1/reset-face").headers["Location"] == "/admin"
    assert "resolved" in client.get("/admin").get_data(as_text=True).split('id="conflicts"')[1]
    client.post("/logout")  # Grace takes her photo again and registers
    client.post("/register/capture", data={"consent": "y"})
    response = client.post("/register/camera", data={"username": "g.hopper", "password": "correct horse"})
    assert response.headers["Location"] == "/login"
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().headers["Location"] == "/protected"
    assert b"g.hopper" in client.get("/protected").data


def test_recognition_health_panel_draws_the_histogram(app, admin):
    with app.app_context():
        db.session.add(LoginAttempt(at=utcnow(), mode="face", outcome="success", distance=0.2))
        db.session.commit()
    response = admin.get("/admin")
    page = response.get_data(as_text=True)
    assert "Recognition health" in page and "No look-alike pairs." in page
    svg = page[page.index("<svg") : page.index("</svg>") + 6]
    assert 'role="img"' in svg and "<desc" in svg and "1 recent genuine logins" in svg
    assert "1 impostor pairs between 2 users" in svg and f"tolerance {app.config['FACE_TOLERANCE']:.3f}" in svg
    # Drawn with attributes only: the CSP (no inline styles or scripts) lets it show.
    assert "style=" not in svg and "<script" not in svg
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "rule of three" in page and f"tolerance {app.config['FACE_TOLERANCE']:.3f}" in page


def test_learned_templates_are_shown_and_removed_after_confirmation(app, admin, kiosk, blink_media):
    admin.post("/logout")
    app.config["LIVENESS"] = "blink"  # Grace logs in live: her capture is learned
    kiosk.look(blink_media["grace_blinks"])
    assert kiosk.face_login().headers["Location"] == "/protected"
    admin.post("/logout")
    kiosk.password_login("boss", "s3cret pass")
    page = admin.get("/admin").get_data(as_text=True)
    assert "+ 1 learned" in page and "login from 127.0.0.1 (face)" in page
    assert 'href="/admin/users/1/learned/1"' in page
    confirm = admin.get("/admin/users/1/learned/1")
    assert confirm.status_code == 200 and b"Remove a learned template of grace?" in confirm.data
    assert b'action="/admin/users/1/learned/1"' in confirm.data
    assert admin.get("/admin/users/2/learned/1").status_code == 404  # not Luis's
    app.config["WTF_CSRF_ENABLED"] = True
    assert admin.post("/admin/users/1/learned/1").status_code == 400
    app.config["WTF_CSRF_ENABLED"] = False
    assert admin.post("/admin/users/1/learned/1").headers["Location"] == "/admin"
    page = admin.get("/admin").get_data(as_text=True)
    assert "A learned template of grace was removed." in page and "+ 1 learned" not in page
