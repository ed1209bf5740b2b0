"""Blink liveness: the maths on fixed numbers, and real clips on the real engine through the kiosk."""

import statistics

import cv2
import pytest

from facelogin.engine import faces, liveness
from facelogin.services.attempts import face_login
from media import BLINK_AT
from models import LoginAttempt, db

OPEN = [0.30, 0.31, 0.29, 0.30, 0.31]


def test_eye_aspect_ratio_of_known_points():
    # Corners 3 apart, lids 0.5 above and below at both inner points: (1 + 1) / (2 * 3).
    eye = [(0, 0), (1, -0.5), (2, -0.5), (3, 0), (2, 0.5), (1, 0.5)]
    assert liveness.eye_aspect_ratio(eye) == pytest.approx(1 / 3)
    assert liveness.eye_aspect_ratio([(1, 1)] * 6) == 0.0  # no width: no division by zero


@pytest.mark.parametrize(
    ("values", "found"),
    [
        (OPEN + [0.10, 0.08, 0.30, 0.30], (4, 6, 7)),  # closed two frames, then open again
        (OPEN + [0.25, 0.12, 0.10, 0.14, 0.22, 0.30], (5, 7, 10)),  # half-open frames belong to it
        (OPEN * 4, None),  # a still face
        (OPEN + [0.10, 0.30, 0.30], None),  # one low frame: a landmark glitch, not a blink
        (OPEN + [0.10] * 13 + [0.30], None),  # eyes shut too long: a photo with eyes closed
        (OPEN + [0.10, 0.10], None),  # never reopened within the burst
        (OPEN + [0.10, None, 0.10, 0.30], None),  # the face vanished mid-blink
        ([0.30, 0.10, 0.10, 0.30, 0.30], None),  # no open-eye baseline yet
    ],
)
def test_find_blink(values, found):
    blink = liveness.find_blink(values)
    assert (blink and (blink.before, blink.deepest, blink.after)) == found


def test_empty_burst_says_no_face():
    assert liveness.watch_for_blink([]) == liveness.Watch((), "no_face", 0, None, None)


def _clip_values(path):
    """Return the (EAR, openness) of every frame of a video file, measured by the engine."""
    capture, values = cv2.VideoCapture(path), []
    while (ok := capture.read())[0]:
        rgb = faces.frame_to_rgb(ok[1])
        points = faces.face_landmarks(rgb, faces.find_single_face(rgb).box)
        values.append((liveness.face_ear(points), liveness.openness(points)))
    capture.release()
    return values


def _drop(values, column):
    """Return the highest closed-frame value as a share of the median open-frame value."""
    closed = [v[column] for i, v in enumerate(values) if i in BLINK_AT]
    return max(closed) / statistics.median(v[column] for i, v in enumerate(values) if i not in BLINK_AT)


def test_painted_eyes_really_close_for_the_engine(blink_media):
    values = _clip_values(blink_media["grace_blinks"])
    assert _drop(values, 0) < 0.6 and _drop(values, 1) < 0.6  # EAR, and openness


def test_tilted_photo_drops_ear_but_not_openness(blink_media):
    values = _clip_values(blink_media["luis_tilted"])
    assert _drop(values, 0) < 0.75 and _drop(values, 1) > 0.8


def _login(app, kiosk, source, *people):
    """Turn blink liveness on, enrol `people`, log in at `source`; return the response and its audit row."""
    app.config["LIVENESS"] = "blink"
    for name, photo in people:
        kiosk.register(name, photo)
    kiosk.look(source)
    response = kiosk.face_login()
    with app.app_context():
        attempt = db.session.scalars(db.select(LoginAttempt).order_by(LoginAttempt.id.desc())).first()
        return response, (attempt.outcome, attempt.reason, attempt.liveness)


def test_real_blink_logs_in(app, kiosk, photos, blink_media):
    response, attempt = _login(app, kiosk, blink_media["grace_blinks"], ("grace", photos["grace"]))
    assert response.status_code == 302 and response.headers["Location"] == "/protected"
    assert b"Hello, grace" in kiosk.client.get("/protected").data
    assert attempt == ("success", "match", "passed")
    with app.test_request_context("/login", method="POST"):
        decision = face_login()  # the clip loops: the next blink, seen directly
    assert decision.label == 1 and decision.votes == 3  # before, during and after the blink


@pytest.mark.parametrize("source", ["grace_video", "grace_altered"])
def test_photo_or_frozen_frame_is_refused(app, kiosk, photos, media, source):
    response, attempt = _login(app, kiosk, media[source], ("grace", photos["grace"]))
    assert response.status_code == 401 and b"Please blink" in response.data
    assert attempt == ("failure", "no_blink", "failed")
    assert kiosk.client.get("/protected").status_code == 302


def test_tilting_a_photo_is_not_a_blink(app, kiosk, photos, blink_media):
    response, attempt = _login(app, kiosk, blink_media["luis_tilted"], ("luis", photos["luis"]))
    assert response.status_code == 401 and attempt == ("failure", "no_blink", "failed")


@pytest.mark.parametrize(
    ("clip", "enrolled"),
    [
        ("astronaut_blinks_in_grace", ["grace"]),  # someone else blinks between Grace's frames
        ("grace_blinks_in_luis", ["luis", "grace"]),  # Grace blinks while Luis is matched around her
    ],
)
def test_another_face_blinking_is_refused(app, kiosk, photos, blink_media, clip, enrolled):
    response, attempt = _login(app, kiosk, blink_media[clip], *[(n, photos[n]) for n in enrolled])
    assert response.status_code == 401 and b"Face not recognised" in response.data
    assert attempt == ("failure", "not_recognised", "passed")  # a blink, but not one person's


def test_liveness_off_decides_the_plain_burst(app, kiosk, photos, media):
    app.config["LIVENESS"] = "off"
    kiosk.register("grace", photos["grace"])
    with app.test_request_context("/login", method="POST"):
        assert face_login().liveness == "off"


@pytest.mark.parametrize("setting", [{"LIVENESS": "blnk"}, {"LOGIN_MODE": "face+pasword"}])
def test_misspelt_setting_stops_the_app_at_start(make_app, setting):
    with pytest.raises(ValueError, match="must be one of"):
        make_app(**setting)  # fails closed instead of quietly weakening the login


def test_login_page_asks_for_a_blink_only_when_on(app, client):
    assert b"then blink once" not in client.get("/login").data
    app.config["LIVENESS"] = "blink"
    assert b"then blink once" in client.get("/login").data


def test_no_face_is_reported_as_such(app, kiosk, photos, media):
    response, attempt = _login(app, kiosk, media["empty_video"], ("grace", photos["grace"]))
    assert response.status_code == 401 and b"No face seen" in response.data
    assert attempt == ("failure", "no_face", "failed")
