"""The pickled face-template column: plain lists only, and a tampered row runs nothing."""

import logging
import math
import os
import pickle

import pytest
from cryptography.fernet import Fernet
from driver import Kiosk, register_kiosk
from sqlalchemy import text

from models import TamperedTemplateError, TemplatePickler, User, db


class Exploit:
    """A pickle payload that would create a file if it were ever unpickled normally."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("templates", [[[0.25] * 128, [i / 128 for i in range(128)]], []])
def test_templates_round_trip(templates):
    # An empty list is a user with no face yet (an admin, or after a face reset).
    assert TemplatePickler.loads(TemplatePickler.dumps(templates)) == templates


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        [[]],
        [[0.1] * 127],
        [[0.1] * 129],
        [[0.1] * 127 + [math.nan]],
        [[0.1] * 127 + [math.inf]],
        [[1] * 128],
        [{"a": 1}],
        "not a list",
        [[0.1] * 128] * 33,
    ],
)
def test_wrong_shapes_are_refused(value):
    with pytest.raises(TamperedTemplateError):
        TemplatePickler.loads(pickle.dumps(value))


def test_malicious_pickle_is_refused_and_never_runs(app, kiosk, photos, tmp_path, caplog):
    marker = tmp_path / "pwned"
    payload = pickle.dumps([[0.1] * 128, Exploit(marker)])
    with pytest.raises(TamperedTemplateError):
        TemplatePickler.loads(payload)
    assert not marker.exists()

    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    with app.app_context():
        db.session.execute(text("UPDATE users SET face_encodings = :p WHERE username = 'luis'"), {"p": payload})
        db.session.commit()
        luis = db.session.execute(db.select(User).where(User.username == "luis")).scalar_one()
        with pytest.raises(TamperedTemplateError):
            _ = luis.face_encodings
    assert not marker.exists()

    # The login path keeps working for everybody else, and the refusal is logged.
    assert kiosk.face_login().headers["Location"] == "/protected"
    assert not marker.exists()
    assert any("refused face templates of user 2" in r.getMessage() for r in caplog.records)


def test_nan_template_in_database_is_skipped(app, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    with app.app_context():
        bad = pickle.dumps([[float("nan")] * 128])
        db.session.execute(text("UPDATE users SET face_encodings = :p"), {"p": bad})
        db.session.commit()
    response = kiosk.face_login()
    assert response.status_code == 401 and b"Face not recognised" in response.data


def test_usernames_are_unique_ignoring_case(app):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        db.session.add(User(username="Grace", password_hash="x", face_encodings=[[0.0] * 128]))
        db.session.commit()
        db.session.add(User(username="gRACE", password_hash="x", face_encodings=[[0.0] * 128]))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        assert User.by_username("GRACE").username == "Grace"


def test_user_without_face_is_left_out_of_the_gallery(app, kiosk, photos):
    from facelogin.services.gallery import get_gallery

    kiosk.register("grace", photos["grace"])
    with app.app_context():
        db.session.add(User(username="admin", password_hash="x", face_encodings=[], is_admin=True))
        db.session.commit()
        assert User.by_username("admin").face_encodings == []
        assert list(get_gallery().index().labels) == [User.by_username("grace").id]
    assert kiosk.face_login().headers["Location"] == "/protected"


# --- Face templates encrypted at rest with FACE_TEMPLATE_KEY: sealed rows, forgery refused, key changes.

KEY1, KEY2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _started(make_app, **config):
    app = make_app(**config)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    register_kiosk(app, client)
    return app, Kiosk(app, client)


def _raw(app):
    with app.app_context():
        return [bytes(r[0]) for r in db.session.execute(text("SELECT face_encodings FROM users ORDER BY id"))]


def test_templates_are_sealed_and_still_match(make_app, photos):
    app, kiosk = _started(make_app, FACE_TEMPLATE_KEY=KEY1)
    kiosk.register("grace", photos["grace"])
    (stored,) = _raw(app)
    assert stored.startswith(b"gAAAAA") and b"\x80" not in stored[:2]  # a Fernet token, not a pickle
    assert len(pickle.loads(Fernet(KEY1).decrypt(stored))[0]) == 128  # the template, sealed
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_forged_clear_row_is_refused_when_a_key_is_set(make_app, photos, media):
    app, kiosk = _started(make_app, FACE_TEMPLATE_KEY=KEY1)
    kiosk.register("luis", photos["luis"])
    with app.app_context():
        # An attacker with database access copies Grace's template into Luis's row in clear.
        from facelogin.engine.faces import encode_face, find_single_face, frame_to_rgb
        from media import load_bgr

        rgb = frame_to_rgb(load_bgr(photos["grace"]))
        forged = pickle.dumps([encode_face(rgb, find_single_face(rgb, detect_width=1024).box).tolist()])
        db.session.execute(text("UPDATE users SET face_encodings = :f"), {"f": forged})
        db.session.commit()
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().status_code == 401


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not-a-key", "not a valid Fernet key"),
        (KEY2, "does not open the stored face templates"),
        (None, "set FACE_TEMPLATE_KEY"),
    ],
)
def test_wrong_key_is_a_clear_startup_error(make_app, photos, key, message):
    _, kiosk = _started(make_app, FACE_TEMPLATE_KEY=KEY1)
    kiosk.register("grace", photos["grace"])
    with pytest.raises((RuntimeError, ValueError), match=message):  # the format: a config error
        make_app(FACE_TEMPLATE_KEY=key)


def test_rekey_seals_clear_rows_then_rotates(make_app, photos):
    app, kiosk = _started(make_app)
    kiosk.register("grace", photos["grace"])
    assert _raw(app)[0].startswith(b"\x80")  # in clear: no key yet

    app, kiosk = _started(make_app, FACE_TEMPLATE_KEY=KEY1)
    result = app.test_cli_runner().invoke(args=["faces", "rekey"])
    assert result.exit_code == 0 and "Sealed the face templates of 1 users" in result.output
    assert Fernet(KEY1).decrypt(_raw(app)[0])
    assert kiosk.face_login().headers["Location"] == "/protected"

    app, kiosk = _started(make_app, FACE_TEMPLATE_KEY=f"{KEY2},{KEY1}")  # new key first, old after
    assert app.test_cli_runner().invoke(args=["faces", "rekey"]).exit_code == 0
    app, kiosk = _started(make_app, FACE_TEMPLATE_KEY=KEY2)  # the old key is no longer needed
    assert kiosk.face_login().headers["Location"] == "/protected"
    with pytest.raises(RuntimeError):
        make_app(FACE_TEMPLATE_KEY=KEY1)


def test_rekey_needs_a_key(runner):
    result = runner.invoke(args=["faces", "rekey"])
    assert result.exit_code != 0 and "Set FACE_TEMPLATE_KEY" in result.output


# --- one loader for stored templates: a bad row never causes a 500 --------------------------

BAD_ROWS = {
    "garbage": b"\x00\xffnot a pickle at all",
    "truncated": pickle.dumps([[0.1] * 128])[:40],
    "foreign": pickle.dumps({"templates": [[0.1] * 128]}),
    "wrong key": Fernet(Fernet.generate_key()).encrypt(pickle.dumps([[0.1] * 128])),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_a_bad_first_row_refuses_that_face_only(make_app, kind, photos):
    # Listen on the models logger itself: alembic's logging set-up (db upgrade) replaces root handlers.
    records = logging.Handler()
    records.emit = lambda record: logged.append(record.getMessage())
    logged = []
    logging.getLogger("models").addHandler(records)
    app = make_app()
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    client = app.test_client()
    register_kiosk(app, client)
    kiosk = Kiosk(app, client)
    assert kiosk.register("grace", photos["grace"]).status_code == 302  # user 1: the first row
    assert kiosk.register("luis", photos["luis"]).status_code == 302
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    with app.app_context():
        db.session.execute(text("UPDATE users SET face_encodings = :p WHERE id = 1"), {"p": BAD_ROWS[kind]})
        db.session.commit()

    refused = kiosk.face_login()
    assert refused.status_code == 401, refused.data[-900:]  # Grace's face is refused...
    assert any("refused face templates of user 1" in message for message in logged)
    logging.getLogger("models").removeHandler(records)
    kiosk.look(kiosk.app.config["CAMERA_SOURCE"].replace("grace", "luis"))
    assert kiosk.face_login().headers["Location"] == "/protected"  # ...everyone else's works
    kiosk.client.post("/logout")

    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"
    own = kiosk.client.get("/protected")
    assert own.status_code == 200 and b"could not be read" in own.data
    kiosk.client.post("/logout")
    assert kiosk.password_login("boss", "s3cret pass").headers["Location"] == "/protected"
    admin = kiosk.client.get("/admin")
    assert admin.status_code == 200 and b"unreadable" in admin.data and b"luis" in admin.data
    assert "unreadable face data" in runner.invoke(args=["users", "list"]).output
    # Start-up reads the first rows: one bad row must stop neither the app nor `flask db upgrade`.
    restarted = make_app()
    assert restarted.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0


def test_a_locked_attempt_records_its_liveness(app, kiosk, photos, blink_media):
    from models import LoginAttempt

    app.config["LIVENESS"] = "blink"
    kiosk.register("grace", photos["grace"])
    with app.app_context():
        grace = User.by_username("grace")
        grace.face_disabled = True
        db.session.commit()
    kiosk.look(blink_media["grace_blinks"])
    assert kiosk.face_login().status_code == 403
    with app.app_context():
        row = db.session.execute(db.select(LoginAttempt).order_by(LoginAttempt.id.desc())).scalars().first()
        assert (row.outcome, row.liveness) == ("locked", "passed")
