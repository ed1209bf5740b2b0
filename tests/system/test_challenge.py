"""Challenge liveness end to end, with the shipped default LIVENESS=challenge: the real engine, the
real OpenCV capture path (clips as the camera), the real database, registered and unregistered kiosks."""

import io

import cv2
import pytest
from driver import Kiosk, force_challenge, open_kiosk, page_challenge

from facelogin.config import defaults
from facelogin.services import accounts
from media import blink_clip, flat_clip, load_bgr, on_canvas, still_clip, swap_clip, turn_clip, write_video
from models import LearnedTemplate, LoginAttempt, db

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


@pytest.fixture(scope="module")
def clips(photos, tmp_path_factory):
    """Camera clips of Grace: a genuine movement each way, and the attacks on her photo."""
    d = tmp_path_factory.mktemp("challenge")
    grace, luis = on_canvas(load_bgr(photos["grace"])), on_canvas(load_bgr(photos["luis"]))
    made = {f"turn_{way}": turn_clip(grace, way, seed=i) for i, way in enumerate(OPPOSITE)}
    made |= {f"flat_{way}": flat_clip(grace, way, seed=i) for i, way in enumerate(OPPOSITE)}
    made |= {"still": still_clip(grace), "blink": blink_clip(grace)}
    made |= {f"swap_{way}": swap_clip(luis, grace, way, seed=i) for i, way in enumerate(OPPOSITE)}
    return {name: write_video(d / f"{name}.avi", frames) for name, frames in made.items()}


@pytest.fixture
def live(make_app, photos):
    """A kiosk with the shipped liveness default, Grace enrolled, in a registered kiosk browser."""
    kiosk = open_kiosk(make_app(LIVENESS=None))
    assert kiosk.register("grace", photos["grace"]).status_code == 302
    return kiosk


def _attempt(kiosk, clip_for, challenge=None):
    """Open the login page (drawn to ask for `challenge` if given), show the clip for its challenge, press."""
    if challenge is not None:
        force_challenge(kiosk.app, kiosk.client, challenge)
    challenge, nonce = kiosk.challenge()
    kiosk.look(clip_for(challenge))
    return challenge, kiosk.face_login(nonce=nonce)


def _last_attempt(app):
    with app.app_context():
        row = db.session.execute(db.select(LoginAttempt).order_by(LoginAttempt.id.desc())).scalars().first()
        return row.outcome, row.liveness, row.challenge


def test_challenge_is_the_shipped_default(live):
    assert live.app.config["LIVENESS"] == "challenge" == defaults(live.app)["LIVENESS"]
    challenge, nonce = page_challenge(live.client.get("/login").data)
    assert challenge in ("left", "right", "up", "down") and nonce


@pytest.mark.parametrize("way", list(OPPOSITE))
def test_the_asked_movement_logs_in(live, clips, way):
    challenge, response = _attempt(live, lambda way: clips[f"turn_{way}"], way)
    assert response.status_code == 302 and response.headers["Location"] == "/protected"
    assert _last_attempt(live.app) == ("success", "passed", challenge)


def test_a_live_login_learns_a_template_from_that_login(live, clips):
    challenge, response = _attempt(live, lambda way: clips[f"turn_{way}"])
    assert response.headers["Location"] == "/protected"
    with live.app.app_context():
        (learned,) = db.session.execute(db.select(LearnedTemplate)).scalars()
        success = db.session.execute(db.select(LoginAttempt).where(LoginAttempt.outcome == "success")).scalar_one()
        assert learned.attempt_id == success.id and learned.distance <= live.app.config["LEARN_MAX_DISTANCE"]
    assert b"Learned at your logins" in live.client.get("/protected").data


ATTACKS = [(attack, way) for attack in ("still", "blink", "flat", "replay", "swap") for way in OPPOSITE]


@pytest.mark.parametrize(("attack", "way"), ATTACKS)
def test_attacks_are_refused_with_what_to_do(live, clips, attack, way):
    pick = {
        "still": lambda way: clips["still"],
        "blink": lambda way: clips["blink"],
        "flat": lambda way: clips[f"flat_{way}"],
        "replay": lambda way: clips[f"turn_{OPPOSITE[way]}"],
        "swap": lambda way: clips[f"swap_{way}"],
    }[attack]
    challenge, response = _attempt(live, pick, way)
    assert challenge == way and response.status_code == 401
    page = response.get_data(as_text=True)
    assert "Please look straight at the camera, then" in page or "not recognised" in page
    assert "flat" not in page and "homography" not in page  # no hint of which check failed
    assert _last_attempt(live.app)[0] == "failure" and _last_attempt(live.app)[2] == challenge
    assert live.client.get("/protected").status_code == 302


def test_each_attempt_draws_a_new_challenge_used_once(live, clips):
    challenge, nonce = live.challenge()
    live.look(clips["still"])
    assert live.face_login(nonce=nonce).status_code == 401
    _, fresh = live.challenge()
    assert fresh != nonce
    live.look(clips[f"turn_{challenge}"])
    again = live.face_login(nonce=nonce)  # the used challenge, answered late: refused
    assert again.status_code == 400 and b"expired" in again.data


def test_liveness_failures_count_towards_the_lockout(live, clips):
    live.app.config["LOGIN_MODE"] = "username+face"
    live.look(clips["still"])
    statuses = [live.face_login({"username": "grace"}).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_face_login_needs_a_registered_kiosk(live, clips):
    stranger = Kiosk(live.app, live.app.test_client())
    challenge, nonce = stranger.challenge()
    assert challenge is None  # no challenge shown where face login cannot work
    stranger.look(clips["turn_left"])
    refused = stranger.face_login(nonce=nonce)
    assert refused.status_code == 403 and b"registered kiosk" in refused.data
    assert stranger.client.post("/register/capture", data={"consent": "y"}).status_code == 403
    assert stranger.client.get("/camera/stream").status_code == 403
    assert stranger.password_login("grace", "correct horse").headers["Location"] == "/protected"


def test_revoked_kiosk_loses_face_login(live, clips):
    with live.app.app_context():
        from facelogin.services import sessions

        name = sessions.list_devices()[0].name
        sessions.revoke_device(name)
    challenge, response = _attempt(live, lambda way: clips["turn_left"])
    assert challenge is None and response.status_code == 403


def _frames(path):
    """The frames of a clip as JPEG files, as the kiosk browser posts them."""
    capture, out = cv2.VideoCapture(path), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return out
        out.append((io.BytesIO(cv2.imencode(".jpg", frame)[1].tobytes()), f"f{len(out)}.jpg"))


def test_browser_frames_answer_the_challenge_only_with_its_nonce(live, clips):
    live.app.config["CAMERA_MODE"] = "browser"
    challenge, nonce = live.challenge()
    refused = live.client.post("/login", data={"frame": _frames(clips[f"turn_{OPPOSITE[challenge]}"]), "nonce": nonce})
    assert refused.status_code == 401
    challenge, nonce = live.challenge()
    forged = live.client.post("/login", data={"frame": _frames(clips[f"turn_{challenge}"]), "nonce": "guess"})
    assert forged.status_code == 400
    challenge, nonce = live.challenge()
    stranger = live.app.test_client()
    stranger.get("/login")
    assert (
        stranger.post("/login", data={"frame": _frames(clips[f"turn_{challenge}"]), "nonce": nonce}).status_code == 403
    )
    response = live.client.post("/login", data={"frame": _frames(clips[f"turn_{challenge}"]), "nonce": nonce})
    assert response.headers["Location"] == "/protected"


def test_an_admin_face_asks_for_the_password(live, clips):
    with live.app.app_context():
        from models import User

        accounts.promote(User.by_username("grace"))
    challenge, response = _attempt(live, lambda way: clips[f"turn_{way}"])
    assert response.status_code == 401 and b"Administrators log in with their password" in response.data
    assert b'<details class="fallback" open>' in response.data
    assert live.client.get("/admin").status_code == 302  # not logged in
    assert live.password_login("grace", "correct horse").headers["Location"] == "/protected"
    assert live.client.get("/admin").status_code == 200


def test_a_refused_page_carries_the_new_nonce(live, clips):
    challenge, nonce = live.challenge()
    live.look(clips["still"])
    refused = live.face_login(nonce=nonce)
    fresh_challenge, fresh_nonce = page_challenge(refused.data)
    assert refused.status_code == 401 and fresh_nonce and fresh_nonce != nonce
    live.look(clips[f"turn_{fresh_challenge}"])
    assert live.face_login(nonce=fresh_nonce).headers["Location"] == "/protected"  # straight from that page


def test_a_replayed_session_cookie_cannot_reuse_a_challenge(live, clips):
    # The session cookie lives in the browser: a saved copy must not bring back a used challenge
    # (it would let a recording of one movement answer every time).
    challenge, nonce = live.challenge()
    saved = live.client.get_cookie("session").value
    live.look(clips[f"turn_{challenge}"])
    assert live.face_login(nonce=nonce).headers["Location"] == "/protected"
    live.client.post("/logout")
    live.client.set_cookie("session", saved)
    replayed = live.face_login(nonce=nonce)
    assert replayed.status_code == 400 and b"expired" in replayed.data
    assert live.client.get("/protected").status_code == 302


def test_an_old_challenge_expires(live, clips, clock):
    challenge, nonce = live.challenge()
    clock.advance(11 * 60)
    live.look(clips[f"turn_{challenge}"])
    assert live.face_login(nonce=nonce).status_code == 400
