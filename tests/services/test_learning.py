"""Learned templates: only a confident live login is learned, into two slots anchored on the enrolment.

Grace's photo blurred ever more (sigma 3 to 8) is a real face drifting away from her enrolment
step by step: 0.23 to 0.56 from it, each step about 0.07 from the last (real engine, measured).
"""

import cv2
import numpy as np
import pytest
from sqlalchemy import func, text

from facelogin.config import learning_bars
from facelogin.engine import faces
from facelogin.services import accounts, enrolment, learning
from facelogin.services.gallery import get_gallery
from media import load_bgr, on_canvas, write_video
from models import LearnedTemplate, User, db

SIGMAS = (3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8)


def _encode(bgr):
    """Encode the one face of a camera-sized frame as a login does."""
    rgb = faces.frame_to_rgb(bgr)
    return faces.encode_face(rgb, faces.find_single_face(rgb, quick=True).box)


@pytest.fixture(scope="module")
def faces_of(photos, tmp_path_factory):
    """Encodings and camera clips: Grace sharp (0) and blurred by each sigma, and Luis."""
    grace = load_bgr(photos["grace"])
    frames = {0: on_canvas(grace), "luis": on_canvas(load_bgr(photos["luis"]))}
    frames |= {sigma: on_canvas(cv2.GaussianBlur(grace, (0, 0), sigma)) for sigma in SIGMAS}
    d = tmp_path_factory.mktemp("learning")
    clips = {key: write_video(d / f"{key}.avi", [frame] * 6) for key, frame in frames.items()}
    return {key: _encode(frame) for key, frame in frames.items()}, clips


@pytest.fixture
def grace(app, faces_of):
    """Grace enrolled from her sharp photo and Luis from his; the id of Grace."""
    encodings, _ = faces_of
    with app.app_context():
        db.session.add_all(
            [
                User(username="grace", password_hash="x", face_encodings=[encodings[0].tolist()]),
                User(username="luis", password_hash="x", face_encodings=[encodings["luis"].tolist()]),
            ]
        )
        db.session.commit()
        return User.by_username("grace").id


def _login(user_id, encoding, liveness="passed"):
    """Offer a capture accepted as `user_id`'s login (with `liveness`) for learning; return what was learned."""
    match = get_gallery().index().identify(encoding)
    decision = faces.Decision(user_id, "match", match.distance, match.runner_up - match.distance, 2, 2)
    return learning.learn_from_login(
        db.session.get(User, user_id), decision._replace(liveness=liveness, encoding=encoding)
    )


def _learned(user_id):
    """Return the user's learned templates, oldest first."""
    rows = db.session.execute(db.select(LearnedTemplate).where(LearnedTemplate.user_id == user_id)).scalars()
    return [np.array(row.template()) for row in sorted(rows, key=lambda row: (row.learned_at, row.id))]


def test_a_confident_live_login_is_learned_beside_the_enrolment(app, grace, faces_of):
    encodings, _ = faces_of
    with app.app_context():
        assert _login(grace, encodings[4]) is not None
        (kept,) = _learned(grace)
        assert np.allclose(kept, encodings[4], atol=1e-6)
        assert np.allclose(db.session.get(User, grace).templates(), [encodings[0]], atol=1e-6)  # untouched
        assert sorted(get_gallery().index().labels.tolist()) == [grace, grace, grace + 1]


@pytest.mark.parametrize(
    ("sigma", "liveness"), [(4, "off"), (4, "failed"), (5.5, "passed")], ids=["off", "failed", "near-tolerance"]
)
def test_no_liveness_or_a_match_near_the_tolerance_is_never_learned(app, grace, faces_of, sigma, liveness):
    encodings, _ = faces_of
    with app.app_context():
        distance = get_gallery().index().identify(encodings[sigma]).distance
        assert distance <= app.config["FACE_TOLERANCE"]  # a login this far in is accepted...
        assert _login(grace, encodings[sigma], liveness) is None and _learned(grace) == []  # ...not learned


def test_a_small_lead_over_another_user_is_not_learned(app, grace, faces_of):
    encodings, _ = faces_of
    with app.app_context():
        # A look-alike enrolled 0.36 from this capture: the login's 0.08 margin holds, learning's 0.15 does not.
        db.session.add(User(username="twin", password_hash="x", face_encodings=[encodings[6].tolist()]))
        db.session.commit()
        match = get_gallery().index().identify(encodings[3])
        assert match.label == grace and app.config["FACE_MARGIN"] <= match.runner_up - match.distance < 0.15
        assert _login(grace, encodings[3]) is None


def test_the_third_learn_replaces_the_oldest_and_the_enrolment_stays(app, grace, faces_of):
    encodings, _ = faces_of
    with app.app_context():
        for sigma in (3, 3.5, 4):
            _login(grace, encodings[sigma])
        kept = _learned(grace)
        assert len(kept) == 2 and np.allclose(kept, [encodings[3.5], encodings[4]], atol=1e-6)
        assert np.allclose(db.session.get(User, grace).templates(), [encodings[0]], atol=1e-6)


def test_a_drifting_face_cannot_walk_the_templates_away_from_the_enrolment(app, grace, faces_of):
    encodings, _ = faces_of
    bar = app.config["LEARN_MAX_DISTANCE"]
    with app.app_context():
        for sigma in SIGMAS:  # each step lies within 0.09 of the one before: close to the newest learned
            if get_gallery().index().identify(encodings[sigma]).label == grace:
                _login(grace, encodings[sigma])
            for kept in _learned(grace):
                assert np.linalg.norm(kept - encodings[0]) <= bar
        # Chained on the closest template, every step would have been learned, up to sigma 8 (0.56 from
        # her enrolment). Anchored, the walk stops at sigma 4.5, the last capture within the bar.
        assert np.allclose(_learned(grace), [encodings[4], encodings[4.5]], atol=1e-6)


def test_a_probe_only_a_learned_template_matches_logs_in_until_it_is_removed(app, grace, faces_of, kiosk):
    encodings, clips = faces_of
    app.config["FACE_TOLERANCE"] = 0.45  # so that the enrolment alone refuses the probe
    kiosk.look(clips[7])  # 0.50 from the enrolment, 0.29 from the sigma 4.5 capture
    assert kiosk.face_login().status_code == 401
    with app.app_context():
        learned = _login(grace, encodings[4.5]).id
    assert kiosk.face_login().headers["Location"] == "/protected"  # the built index noticed the change
    kiosk.client.post("/logout")
    with app.app_context():
        assert learning.remove(db.session.get(User, grace), learned)
    assert kiosk.face_login().status_code == 401


def _count(app):
    with app.app_context():
        return db.session.scalar(db.select(func.count()).select_from(LearnedTemplate))


def test_reset_and_delete_remove_learned_templates(app, grace, faces_of):
    encodings, _ = faces_of
    with app.app_context():
        _login(grace, encodings[4])
        accounts.reset_face(db.session.get(User, grace))
    assert _count(app) == 0
    with app.app_context():
        user = db.session.get(User, grace)
        user.face_encodings = [encodings[0].tolist()]
        db.session.commit()
        _login(grace, encodings[4])
        assert _count(app) == 1
        accounts.delete_user(db.session.get(User, grace))
    assert _count(app) == 0


def test_removing_an_enrolled_photo_drops_what_was_learned_near_it_only(app, grace, faces_of):
    encodings, _ = faces_of
    with app.app_context():
        user = db.session.get(User, grace)
        user.face_encodings = [encodings[0].tolist(), encodings[5].tolist()]  # her second photo, blurred
        db.session.commit()
        _login(grace, encodings[3])  # near the first photo
        _login(grace, encodings[6])  # near the second only: 0.45 from the first
        enrolment.remove_template(db.session.get(User, grace), 2)
        assert np.allclose(_learned(grace), [encodings[3]], atol=1e-6)


def test_learning_can_be_switched_off(app, grace, faces_of):
    app.config["LEARN_TEMPLATES"] = False
    with app.app_context():
        assert _login(grace, faces_of[0][4]) is None


def test_learned_templates_are_sealed_and_rekeyed(make_app, app, grace, faces_of):
    from cryptography.fernet import Fernet

    with app.app_context():
        _login(grace, faces_of[0][4])  # stored in clear: no key yet
    key = Fernet.generate_key().decode()
    sealed = make_app(FACE_TEMPLATE_KEY=key)
    result = sealed.test_cli_runner().invoke(args=["faces", "rekey"])
    assert result.exit_code == 0, result.output
    with sealed.app_context():
        (raw,) = db.session.execute(text("SELECT encoding FROM learned_templates")).scalars()
        assert bytes(raw).startswith(b"gAAAAA") and len(_learned(grace)) == 1
        assert len(get_gallery().index().only(grace)) == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"LEARN_SLOTS": 0}, "LEARN_SLOTS must be a whole number"),
        ({"LEARN_SLOTS": 99}, "LEARN_SLOTS must be at most"),
        ({"LEARN_MAX_DISTANCE": -1}, "LEARN_MAX_DISTANCE must be a positive number"),
        ({"LEARN_TEMPLATES": "yes"}, "LEARN_TEMPLATES must be true or false"),
    ],
)
def test_wrong_learning_settings_are_refused(make_app, config, message):
    with pytest.raises(ValueError, match=message):
        make_app(**config)


@pytest.mark.parametrize(
    ("config", "bars"),
    [
        ({}, (0.35, 0.15)),
        ({"FACE_TOLERANCE": 0.3}, (0.22, 0.15)),  # a tightened login tightens learning too
        # never looser than the login:
        ({"FACE_TOLERANCE": 0.45, "LEARN_MAX_DISTANCE": 0.45, "LEARN_MIN_MARGIN": 0.01}, (0.37, 0.08)),
    ],
)
def test_learning_bars_stay_a_margin_inside_the_login(make_app, config, bars):
    bar = learning_bars(make_app(**config).config)
    assert (bar["max_distance"], bar["min_margin"]) == pytest.approx(bars)


def test_a_tightened_tolerance_stops_learning_what_it_would_have_learned(app, grace, faces_of):
    app.config["FACE_TOLERANCE"] = 0.35  # learning now needs 0.27: the 0.30 capture is not learned
    with app.app_context():
        assert _login(grace, faces_of[0][4]) is None


def test_a_login_without_liveness_learns_nothing(app, kiosk, photos, media):
    kiosk.register("grace", photos["grace"])
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().headers["Location"] == "/protected"  # LIVENESS=off: a photo logs in...
    assert _count(app) == 0  # ...and is never learned


def test_a_login_with_a_real_blink_learns_from_that_login(app, kiosk, photos, blink_media):
    app.config["LIVENESS"] = "blink"
    kiosk.register("grace", photos["grace"])
    kiosk.look(blink_media["grace_blinks"])
    assert kiosk.face_login().headers["Location"] == "/protected"
    with app.app_context():
        (learned,) = learning.learned_of(db.session.get(User, 1))
        assert learned.attempt.outcome == "success" and learned.attempt.liveness == "passed"
        assert learned.distance <= app.config["LEARN_MAX_DISTANCE"]
