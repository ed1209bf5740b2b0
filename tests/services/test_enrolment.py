"""Enrolment refusals: a known face gets one neutral answer and is recorded for admins; the photo is checked first."""

import pytest

from facelogin.services import accounts, enrolment
from facelogin.services.consent import Consent
from facelogin.services.enrolment import FACE_REFUSED, EnrollError
from models import LoginAttempt, User, db, utcnow

AGREED = Consent("test notice", utcnow())


def _refusal(app, *args, **kwargs):
    """Return (message, status) of a refused register_user call."""
    with app.app_context(), pytest.raises(EnrollError) as refused:
        enrolment.register_user(*args, **{"agreed": AGREED, **kwargs})
    return str(refused.value), refused.value.status


def _conflicts(app):
    """Return (mode, username tried, holder id, claimed id, address) of every recorded face conflict."""
    with app.app_context():
        rows = db.session.execute(db.select(LoginAttempt).where(LoginAttempt.outcome == "conflict")).scalars()
        return [(a.mode, a.reason, a.matched_user_id, a.claimed_user_id, a.client_addr) for a in rows]


def test_known_face_is_refused_neutrally_and_recorded(app, photos, media, user_count):
    with app.app_context():
        grace = enrolment.register_user("grace", "correct horse", photos["grace"], agreed=AGREED)
        holder = grace.id
    message, status = _refusal(app, "hopper", "correct horse", media["grace_altered"], "192.0.2.5")
    assert (message, status) == (FACE_REFUSED, 400)
    assert "registered" not in message and "grace" not in message  # nothing says the face has an account
    assert user_count() == 1
    assert _conflicts(app) == [("register", "hopper", holder, None, "192.0.2.5")]


@pytest.mark.parametrize("photo", ["no_face", "not_an_image", "two_faces"])
def test_bad_photo_answers_the_same_for_a_taken_and_a_free_name(app, photos, media, photo):
    with app.app_context():
        enrolment.register_user("grace", "correct horse", photos["grace"], agreed=AGREED)
    taken = _refusal(app, "GRACE", "correct horse", media[photo])
    free = _refusal(app, "nobody-has-this", "correct horse", media[photo])
    assert taken == free and taken[1] == 400


def test_adding_a_photo_of_someone_else_is_refused_neutrally(app, runner, photos, media):
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    with app.app_context():
        holder = enrolment.register_user("grace", "correct horse", photos["grace"], agreed=AGREED).id
        boss = User.by_username("boss")  # no face yet: no "looks like you" check to stop it
        with open(media["grace_altered"], "rb") as f, pytest.raises(EnrollError) as refused:
            enrolment.add_template(boss, f.read(), "192.0.2.6", AGREED)
        assert (str(refused.value), refused.value.status) == (FACE_REFUSED, 400)
        assert boss.templates() == []
        boss_id = boss.id
    assert _conflicts(app) == [("add-photo", "boss", holder, boss_id, "192.0.2.6")]


def test_a_lost_audit_row_still_refuses(app, photos, media, monkeypatch):
    from sqlalchemy.exc import OperationalError

    with app.app_context():
        enrolment.register_user("grace", "correct horse", photos["grace"], agreed=AGREED)

    def locked():
        raise OperationalError("COMMIT", {}, Exception("database is locked"))

    monkeypatch.setattr(db.session, "commit", locked)
    assert _refusal(app, "hopper", "correct horse", media["grace_altered"]) == (FACE_REFUSED, 400)
    monkeypatch.undo()
    assert _conflicts(app) == []


def test_face_conflicts_list_the_holder_until_the_face_is_reset(app, photos, media):
    with app.app_context():
        enrolment.register_user("grace", "correct horse", photos["grace"], agreed=AGREED)
    _refusal(app, "hopper", "correct horse", media["grace_altered"], "192.0.2.5", mode="register-camera")
    with app.app_context():
        (conflict,) = accounts.face_conflicts()
        assert (conflict.holder.username, conflict.holder_has_face, conflict.how) == ("grace", True, "kiosk camera")
        accounts.reset_face(conflict.holder)
        (conflict,) = accounts.face_conflicts()
        assert conflict.holder_has_face is False
