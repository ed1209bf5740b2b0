"""End-to-end kiosk flows through the test client, on the real engine and a file camera."""

from flask import session

from models import User, db


def test_register_then_face_login(app, kiosk, media, photos):
    response = kiosk.register("grace", photos["grace"])
    assert response.status_code == 302 and response.headers["Location"] == "/login"

    kiosk.look(media["grace_video"])  # altered frames of Grace, not the enrolled photo
    response = kiosk.face_login()
    assert response.status_code == 302 and response.headers["Location"] == "/protected"
    page = kiosk.client.get("/protected")
    assert page.status_code == 200 and b"Hello, grace" in page.data
    with app.app_context():
        assert db.session.execute(db.select(User)).scalar_one().last_login_at is not None


def test_unknown_face_is_refused(kiosk, media, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.look(media["luis_video"])
    response = kiosk.face_login()
    assert response.status_code == 401
    assert b"Face not recognised" in response.data
    assert kiosk.client.get("/protected").status_code == 302


def test_image_file_acts_as_camera(kiosk, media, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.look(media["grace_altered"])
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_empty_scene_says_no_face(kiosk, media, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.look(media["empty_video"])
    response = kiosk.face_login()
    assert response.status_code == 401 and b"No face seen" in response.data


def test_dark_scene_says_too_dark(kiosk, media, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.look(media["dark_video"])
    response = kiosk.face_login()
    assert response.status_code == 401 and b"too dark" in response.data


def test_two_people_in_view_are_refused(kiosk, media, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.look(media["two_faces"])
    response = kiosk.face_login()
    assert response.status_code == 401 and b"One person at a time" in response.data


def test_missing_camera_gives_503(kiosk, tmp_path):
    kiosk.look(str(tmp_path / "no-such-camera.avi"))
    response = kiosk.face_login()
    assert response.status_code == 503 and b"Camera unavailable" in response.data


def test_face_login_with_nobody_enrolled(kiosk):
    response = kiosk.face_login()
    assert response.status_code == 401 and b"Face not recognised" in response.data


def test_password_fallback(kiosk, photos):
    kiosk.register("Grace", photos["grace"], password="correct horse")
    response = kiosk.password_login("grace", "correct horse")  # any case
    assert response.headers["Location"] == "/protected"
    assert b"Hello, Grace" in kiosk.client.get("/protected").data


def test_wrong_password_and_unknown_user_look_the_same(kiosk, photos):
    kiosk.register("grace", photos["grace"], password="correct horse")
    kiosk.client.get("/login")  # shows (and so consumes) the welcome message
    wrong = kiosk.password_login("grace", "wrong horse")
    unknown = kiosk.password_login("nobody", "correct horse")
    assert wrong.status_code == unknown.status_code == 401
    assert b"Wrong username or password" in wrong.data
    assert wrong.data == unknown.data.replace(b'value="nobody"', b'value="grace"')


def test_protected_requires_login(client):
    response = client.get("/protected")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/protected"
    assert client.get("/protected/photo").status_code == 302


def test_enrolled_photo_only_for_its_owner(app, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    kiosk.password_login("luis", "correct horse")
    photo = kiosk.client.get("/protected/photo")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
    with open(f"{app.config['KNOWN_FACES_FOLDER']}/2.jpg", "rb") as f:
        assert photo.data == f.read()  # luis (id 2) sees his own photo, never Grace's


def test_login_clears_old_session_and_logout_kills_cookie(app, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    with kiosk.client.session_transaction() as s:
        s["planted"] = "by an attacker"
    kiosk.password_login("grace", "correct horse")
    with kiosk.client:
        kiosk.client.get("/protected")
        assert "planted" not in session
        cookie = kiosk.client.get_cookie("session").value
    kiosk.client.post("/logout")
    assert kiosk.client.get("/protected").status_code == 302
    # Replaying the cookie from before the logout does not get back in.
    kiosk.client.set_cookie("session", cookie)
    assert kiosk.client.get("/protected").status_code == 302


def test_idle_session_expires(app, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    with kiosk.client.session_transaction() as s:
        s["seen"] -= app.config["KIOSK_IDLE_SECONDS"] + 1
    assert kiosk.client.get("/protected").status_code == 302


IDLE = b"You were logged out after 2 minutes without activity"


def test_the_camera_view_asking_by_itself_does_not_keep_a_session_alive(app, kiosk, photos, clock, monkeypatch):
    from facelogin.services import sessions

    monkeypatch.setattr(sessions, "clock", clock)
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    for _ in range(5):  # the page's looks and stylesheet, 30 s apart: not the person's activity
        clock.advance(30)
        assert kiosk.client.get("/camera/look").status_code == 200
        kiosk.client.get("/static/style.css").close()
    assert kiosk.client.get("/protected").status_code == 302  # 150 s without the person: logged out


def test_an_idle_logout_is_explained_on_the_login_page(app, kiosk, photos, clock, monkeypatch):
    from facelogin.services import sessions

    monkeypatch.setattr(sessions, "clock", clock)
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    clock.advance(120)  # just at the limit: still logged in, and nothing to explain
    assert kiosk.client.get("/protected").status_code == 200
    clock.advance(121)
    # What idle.js opens once its countdown is over.
    page = kiosk.client.get("/login")
    assert page.status_code == 200 and IDLE in page.data
    assert IDLE not in kiosk.client.get("/login").data  # said once
    kiosk.password_login("grace", "correct horse")
    clock.advance(121)
    # A late click on the person's own page: back to the login page, which says why.
    late = kiosk.client.get("/protected", follow_redirects=True)
    assert late.request.path == "/login" and IDLE in late.data


def test_a_session_ended_elsewhere_is_not_called_idle(app, kiosk, photos, clock, monkeypatch):
    from facelogin.services import sessions

    monkeypatch.setattr(sessions, "clock", clock)
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    with app.app_context():
        User.by_username("grace").session_token = None  # as a logout in another browser leaves it
        db.session.commit()
    clock.advance(121)
    page = kiosk.client.get("/protected", follow_redirects=True)
    assert page.request.path == "/login" and b"without activity" not in page.data


def test_closest_user_wins_not_first(app, kiosk, media, photos):
    # Luis enrols first. With a loose tolerance both users are "within" it for
    # Grace's frames, so a first-match search would log Grace in as Luis.
    kiosk.register("luis", photos["luis"])
    kiosk.register("grace", photos["grace"])
    app.config["FACE_TOLERANCE"] = 0.95
    kiosk.look(media["grace_video"])
    kiosk.face_login()
    assert b"Hello, grace" in kiosk.client.get("/protected").data


def test_ambiguous_match_is_refused_by_margin(app, kiosk, media, photos):
    kiosk.register("grace", photos["grace"])
    with app.app_context():
        grace = db.session.execute(db.select(User)).scalar_one()
        # A second account whose template sits 0.03 from Grace's: a look-alike.
        twin = [x + 0.03 / 128**0.5 for x in grace.face_encodings[0]]
        db.session.add(User(username="twin", password_hash="x", face_encodings=[twin]))
        db.session.commit()
    # The 1:N guard would ask for the username (tests/services/test_health.py): this checks the margin alone.
    app.config["FACE_MAX_FPIR"] = 1.0
    kiosk.look(media["grace_video"])
    response = kiosk.face_login()
    assert response.status_code == 401 and b"Face not recognised" in response.data


def test_next_brings_the_user_back_to_a_local_page_only(kiosk, photos):
    kiosk.register("grace", photos["grace"])
    back = kiosk.client.post(
        "/login/password?next=/protected/photo", data={"username": "grace", "password": "correct horse"}
    )
    assert back.headers["Location"] == "/protected/photo"
    for target in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\r\nSet-Cookie:x",
        "evil.example",
        "///evil.example",
    ]:
        kiosk.client.post("/logout")
        response = kiosk.client.post(
            "/login/password", query_string={"next": target}, data={"username": "grace", "password": "correct horse"}
        )
        assert response.headers["Location"] == "/protected", target


def test_session_ends_after_its_absolute_lifetime(app, kiosk, photos, clock, monkeypatch):
    from facelogin.services import sessions

    monkeypatch.setattr(sessions, "clock", clock)
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    cookie = kiosk.client.get_cookie("session").value
    for _ in range(12 * 60 - 1):  # a request every minute: never idle
        clock.advance(60)
        assert kiosk.client.get("/protected").status_code == 200
    clock.advance(60)  # 12 hours after the login
    response = kiosk.client.get("/protected", follow_redirects=True)
    assert response.request.path == "/login"
    assert b"You were logged out because you logged in more than 12 hours ago" in response.data
    kiosk.client.set_cookie("session", cookie)  # the old cookie does not come back in either
    assert kiosk.client.get("/protected").status_code == 302
