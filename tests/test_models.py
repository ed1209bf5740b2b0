"""The pickled face-template column: plain lists only, and a tampered row runs nothing."""

import math
import os
import pickle

import pytest
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


@pytest.mark.parametrize("value", [
    None, {}, [[]], [[0.1] * 127], [[0.1] * 129], [[0.1] * 127 + [math.nan]], [[0.1] * 127 + [math.inf]],
    [[1] * 128], [{"a": 1}], "not a list", [[0.1] * 128] * 33,
])
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
            luis.face_encodings
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
    from gallery import get_gallery
    kiosk.register("grace", photos["grace"])
    with app.app_context():
        db.session.add(User(username="admin", password_hash="x", face_encodings=[], is_admin=True))
        db.session.commit()
        assert User.by_username("admin").face_encodings == []
        assert list(get_gallery().index().labels) == [User.by_username("grace").id]
    assert kiosk.face_login().headers["Location"] == "/protected"
