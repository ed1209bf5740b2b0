"""Security defaults: configuration, secret key, password hashing, cookies, headers, CSRF."""

import os

import pytest
from werkzeug.security import check_password_hash

from app import create_app
from facelogin.services import sessions


def _app(tmp_path, **config):
    base = {
        "SECRET_KEY": "test",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "UPLOAD_FOLDER": str(tmp_path / "u"),
        "KNOWN_FACES_FOLDER": str(tmp_path / "k"),
    }
    return create_app({**base, **config})


def test_config_from_prefixed_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FLASK_FACE_TOLERANCE", "0.4")
    monkeypatch.setenv("FLASK_CAMERA_SOURCE", "/dev/video2")
    monkeypatch.setenv("FLASK_CAMERA_FRAMES", "15")
    app = _app(tmp_path)
    assert app.config["FACE_TOLERANCE"] == 0.4
    assert app.config["CAMERA_SOURCE"] == "/dev/video2"
    assert app.config["CAMERA_FRAMES"] == 15
    assert _app(tmp_path, FACE_TOLERANCE=0.3).config["FACE_TOLERANCE"] == 0.3  # test dict wins


def test_defaults_are_safe(tmp_path):
    config = _app(tmp_path).config
    # 0.55: the largest tolerance that let no stranger in on real photos (bench/real_photos.md)
    assert config["FACE_TOLERANCE"] <= 0.55 and config["FACE_MARGIN"] > 0
    assert config["WTF_CSRF_ENABLED"] and config["MAX_CONTENT_LENGTH"] <= 16 * 1024 * 1024
    assert config["SESSION_COOKIE_HTTPONLY"] and config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_secret_key_generated_once_into_instance_folder(tmp_path):
    from facelogin.services.sessions import load_secret_key

    app = _app(tmp_path, SECRET_KEY="placeholder")
    app.instance_path = str(tmp_path)
    keys = []
    for _ in range(2):  # two starts of the app
        app.config["SECRET_KEY"] = None
        load_secret_key(app)
        keys.append(app.config["SECRET_KEY"])
    key_file = tmp_path / "secret_key"
    assert len(keys[0]) == 64 and keys[0] == keys[1] == key_file.read_text()
    assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"


def test_default_password_hash_is_owasp_grade(app, kiosk, photos, tmp_path):
    app.config["PASSWORD_HASH_METHOD"] = _app(tmp_path).config["PASSWORD_HASH_METHOD"]
    kiosk.register("grace", photos["grace"], password="correct horse")
    from models import User, db

    with app.app_context():
        stored = db.session.execute(db.select(User)).scalar_one().password_hash
    assert stored.startswith("scrypt:131072:8:1$")  # N=2^17, r=8, p=1
    assert check_password_hash(stored, "correct horse")


def test_cookie_flags(app, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    app.config["SESSION_COOKIE_SECURE"] = True
    response = kiosk.password_login("grace", "correct horse")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


@pytest.mark.parametrize("path", ["/", "/login", "/register", "/protected"])
def test_security_headers_on_every_page(client, path):
    headers = client.get(path).headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def _post_paths(app):
    """Every POST route of the app, with a sample value for its URL arguments."""
    return sorted(
        rule.rule.replace("<int:number>", "1")
        .replace("<int:user_id>", "1")
        .replace("<action>", "delete")
        .replace("<int:learned_id>", "1")
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods
    )


def test_every_post_needs_a_valid_csrf_token(app, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")  # logged in: protected routes reach their checks
    app.config["WTF_CSRF_ENABLED"] = True
    paths = _post_paths(app)
    assert {"/login", "/login/password", "/logout", "/register", "/protected/faces", "/admin/users/1/delete"} <= set(
        paths
    )
    assert {"/protected/learned/1/delete", "/admin/users/1/learned/1"} <= set(paths)
    for path in paths:
        for token in ({}, {"csrf_token": "forged"}):
            response = kiosk.client.post(path, data={"username": "grace", "password": "x", **token})
            assert response.status_code == 400 and b"This page has expired" in response.data, path
    assert kiosk.client.get("/protected").status_code == 200  # nothing above logged grace out


@pytest.mark.parametrize("path", ["/static/style.css", "/no-such-page", "/camera/stream"])
def test_security_headers_on_other_responses(stranger, path):
    response = stranger.get(path)  # not a registered kiosk: 403 stream
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()


def test_unknown_user_costs_as_much_as_a_wrong_password(app, kiosk, photos, monkeypatch):
    # Count the password-hash checks instead of timing them: a skipped hash for an unknown
    # user would show as a missing call, whatever the machine's load.
    from facelogin.services import sessions

    kiosk.register("grace", photos["grace"], password="correct horse")
    checked = []
    real_check = sessions.check_password_hash
    monkeypatch.setattr(
        sessions,
        "check_password_hash",
        lambda stored, password: checked.append(stored.split("$")[0]) or real_check(stored, password),
    )
    wrong, unknown = kiosk.password_login("grace", "wrong horse"), kiosk.password_login("nobody", "wrong horse")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.data.count(b"Wrong username or password") == unknown.data.count(b"Wrong username or password") == 1
    method = app.config["PASSWORD_HASH_METHOD"]
    assert checked == [method, method]  # one check of the same cost each: grace's hash, then the dummy


def _addresses(app):
    """Return the client addresses the audit log holds."""
    from models import LoginAttempt, db

    with app.app_context():
        return db.session.execute(db.select(LoginAttempt.client_addr)).scalars().all()


@pytest.mark.parametrize(
    "given, stored",
    [("203.0.113.9", "203.0.113.9"), ("::ffff:203.0.113.9", "203.0.113.9"), ("fe80::1%" + "a" * 300, "fe80::1")],
)
def test_client_address_is_stored_as_an_ip_address(app, kiosk, photos, given, stored):
    kiosk.register("grace", photos["grace"])
    response = kiosk.client.post(
        "/login/password", data={"username": "grace", "password": "wrong horse"}, environ_base={"REMOTE_ADDR": given}
    )
    assert response.status_code == 401 and _addresses(app) == [stored]


@pytest.mark.parametrize("address", ["<script>alert(1)</script>", "1" * 300, "203.0.113.9:4000", "", "unknown"])
def test_bad_client_address_is_refused_and_never_stored(app, kiosk, photos, address):
    kiosk.register("grace", photos["grace"])
    bad = {"REMOTE_ADDR": address}
    for path in ("/login/password", "/login"):
        response = kiosk.client.post(path, data={"username": "grace", "password": "x" * 8}, environ_base=bad)
        assert response.status_code == 400 and b"Bad forwarded address" in response.data
    assert kiosk.client.get("/", environ_base=bad).status_code == 400
    assert _addresses(app) == [] and kiosk.client.get("/").status_code == 200


def test_permissions_policy_allows_the_camera_to_this_site_only(client):
    policy = client.get("/login").headers["Permissions-Policy"]
    assert "camera=(self)" in policy.split(", ")
    assert {"microphone=()", "geolocation=()"} <= set(policy.split(", "))


def test_hsts_only_with_secure_cookies_over_https(app, client):
    assert "Strict-Transport-Security" not in client.get("/", base_url="https://localhost").headers
    app.config["SESSION_COOKIE_SECURE"] = True
    assert "Strict-Transport-Security" not in client.get("/").headers  # never on plain HTTP
    for path in ("/", "/no-such-page"):
        response = client.get(path, base_url="https://localhost")
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.parametrize(
    "seconds, spoken",
    [(120, "2 minutes"), (60, "1 minute"), (90, "90 seconds"), (1, "1 second"), (2.4, "2 seconds"), (0.2, "1 second")],
)
def test_idle_time_is_said_as_a_person_says_it(seconds, spoken):
    assert sessions.spoken_duration(seconds) == spoken
