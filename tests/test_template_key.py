"""Face templates encrypted at rest with FACE_TEMPLATE_KEY: sealed rows, forgery refused, key changes."""

import pickle

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from conftest import Kiosk
from models import db

KEY1, KEY2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _started(make_app, **config):
    app = make_app(**config)
    with app.app_context():
        db.create_all()
    return app, Kiosk(app, app.test_client())


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
        from faces import encode_face, find_single_face, frame_to_rgb
        from conftest import load_bgr
        rgb = frame_to_rgb(load_bgr(photos["grace"]))
        forged = pickle.dumps([encode_face(rgb, find_single_face(rgb, detect_width=1024).box).tolist()])
        db.session.execute(text("UPDATE users SET face_encodings = :f"), {"f": forged})
        db.session.commit()
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().status_code == 401


@pytest.mark.parametrize(("key", "message"), [
    ("not-a-key", "not a valid Fernet key"),
    (KEY2, "does not open the stored face templates"),
    (None, "set FACE_TEMPLATE_KEY"),
])
def test_wrong_key_is_a_clear_startup_error(make_app, photos, key, message):
    _, kiosk = _started(make_app, FACE_TEMPLATE_KEY=KEY1)
    kiosk.register("grace", photos["grace"])
    with pytest.raises(RuntimeError, match=message):
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
