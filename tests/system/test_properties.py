"""Property tests: whatever arrives at register and login, no 500, and no half-written user."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import User, db

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
field = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
filename = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=40)


def _state(app):
    """Return the users and the files on disk, to compare before and after a request.

    `faces` lists each user's face photo (<id>.jpg) and thumbnail folder (<id>).
    """
    with app.app_context():
        users = {u.id: u.username for u in db.session.execute(db.select(User)).scalars()}
    faces = sorted(os.listdir(app.config["KNOWN_FACES_FOLDER"]))
    uploads = [n for n in os.listdir(app.config["UPLOAD_FOLDER"]) if n != "attempts"]
    return users, faces, uploads


def test_register_with_anything(app, photos, media):
    app.config["REGISTER_RATE_LIMIT"] = 10_000  # the rate limit has its own tests: here every request is checked
    real = [open(path, "rb").read() for path in (photos["grace"], photos["luis"], media["no_face"])]
    photo = st.one_of(st.binary(max_size=2048), st.sampled_from(real))
    seen = set()

    @SETTINGS
    @given(
        # The names and password that register first: the run must reach a name taken twice (409).
        username=st.one_of(st.sampled_from(["grace", "GRACE", "luis"]), field),
        password=st.one_of(st.just("correct horse"), field),
        data=photo,
        name=filename,
        consent=st.sampled_from(["y", "y", "", "no"]),  # unticked: nothing may be kept either
    )
    def check(username, password, data, name, consent):
        import io

        before_users, before_faces, _ = _state(app)
        response = app.test_client().post(
            "/register",
            content_type="multipart/form-data",
            data={
                "username": username,
                "password": password,
                "consent": consent,
                "photo": (io.BytesIO(data), name or "x"),
            },
        )
        assert response.status_code < 500
        seen.add(response.status_code)
        users, faces, uploads = _state(app)
        assert consent == "y" or response.status_code != 302
        if response.status_code == 302:
            (new_id,) = set(users) - set(before_users)
            assert faces == sorted(before_faces + [f"{new_id}.jpg", f"{new_id}"])
        else:
            assert (users, faces) == (before_users, before_faces)
        assert faces == sorted(name for i in users for name in (f"{i}.jpg", f"{i}"))  # every photo has its row and back
        assert uploads == []  # originals never linger

    check()
    assert {302, 400, 409} <= seen  # the run reached successes, refusals and conflicts


def test_password_login_with_anything(app, client):
    app.config.update(PASSWORD_RATE_LIMIT=10_000, PASSWORD_GLOBAL_LIMIT=10_000)  # every request is checked

    @SETTINGS
    @given(username=field, password=field)
    def check(username, password):
        response = client.post("/login/password", data={"username": username, "password": password})
        assert response.status_code in (400, 401)
        assert client.get("/protected").status_code == 302

    check()


def test_face_login_with_any_fields(app, client, media):
    app.config.update(
        LOGIN_MODE="face+password", CAMERA_SOURCE=media["no_face"], CAMERA_FRAMES=2, FACE_RATE_LIMIT=10_000
    )

    @settings(SETTINGS, max_examples=15)
    @given(username=field, password=field)
    def check(username, password):
        response = client.post("/login", data={"username": username, "password": password})
        assert response.status_code in (400, 401)

    check()
