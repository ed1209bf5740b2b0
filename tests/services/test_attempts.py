"""Login modes, lockout and the audit trail, end to end through the test client."""

import os

import pytest

from media import load_bgr, on_canvas, scene, write_video
from models import LoginAttempt, User, db


@pytest.fixture
def grace(app, kiosk, photos, clock):
    """Grace, enrolled, with a short burst so that refused attempts stay quick."""
    kiosk.register("grace", photos["grace"], password="correct horse")
    app.config["CAMERA_FRAMES"] = 4
    return "grace"


def _user(app, name="grace"):
    with app.app_context():
        user = User.by_username(name)
        db.session.expunge(user)
        return user


def _attempts(app):
    with app.app_context():
        return db.session.execute(db.select(LoginAttempt).order_by(LoginAttempt.id)).scalars().all()


def test_username_face_mode_checks_only_the_claimed_user(app, kiosk, grace, photos, media):
    app.config["LOGIN_MODE"] = "username+face"
    kiosk.register("luis", photos["luis"])
    kiosk.look(media["grace_video"])
    wrong = kiosk.client.post("/login", data={"username": "luis"})
    unknown = kiosk.client.post("/login", data={"username": "nobody"})
    assert wrong.status_code == unknown.status_code == 401
    assert b"Face not recognised for that username" in wrong.data and b"for that username" in unknown.data
    assert kiosk.client.post("/login", data={}).status_code == 400  # the mode needs a username
    right = kiosk.client.post("/login", data={"username": "GRACE"})
    assert right.headers["Location"] == "/protected"


def test_face_password_mode_needs_both(app, kiosk, grace, media):
    app.config["LOGIN_MODE"] = "face+password"
    kiosk.look(media["grace_video"])
    wrong_password = kiosk.client.post("/login", data={"username": "grace", "password": "wrong horse"})
    kiosk.look(media["luis_video"])
    wrong_face = kiosk.client.post("/login", data={"username": "grace", "password": "correct horse"})
    assert wrong_password.status_code == wrong_face.status_code == 401
    assert b"Face or password not recognised" in wrong_password.data
    assert b"Face or password not recognised" in wrong_face.data
    kiosk.look(media["grace_video"])
    both = kiosk.client.post("/login", data={"username": "grace", "password": "correct horse"})
    assert both.headers["Location"] == "/protected"


@pytest.mark.parametrize("mode", ["face", "username+face", "face+password"])
def test_password_fallback_in_every_mode(app, kiosk, grace, mode):
    app.config["LOGIN_MODE"] = mode
    assert b"Log in with your password instead" in kiosk.client.get("/login").data
    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"


def test_password_lockout_waits_30s_then_doubles(app, kiosk, grace, clock):
    for _ in range(5):
        assert kiosk.password_login("grace", "wrong horse").status_code == 401
    locked = kiosk.password_login("grace", "correct horse")  # even the right password waits
    assert locked.status_code == 429 and b"please wait 30 seconds" in locked.data
    clock.advance(31)
    assert kiosk.password_login("grace", "wrong horse").status_code == 401  # 6th failure
    assert b"please wait 60 seconds" in kiosk.password_login("grace", "correct horse").data
    clock.advance(61)
    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"
    assert _user(app).password_failures == 0


def test_face_lockout_in_username_face_mode(app, kiosk, grace, clock, media):
    app.config["LOGIN_MODE"] = "username+face"
    kiosk.look(media["luis_video"])
    for _ in range(5):
        assert kiosk.client.post("/login", data={"username": "grace"}).status_code == 401
    kiosk.look(media["grace_video"])
    locked = kiosk.client.post("/login", data={"username": "grace"})
    assert locked.status_code == 429 and b"please wait 30 seconds" in locked.data
    # The password path keeps its own counter and is still open.
    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"
    kiosk.client.post("/logout")
    clock.advance(31)
    assert kiosk.client.post("/login", data={"username": "grace"}).headers["Location"] == "/protected"
    assert _user(app).face_failures == 0


@pytest.mark.parametrize(("liveness", "limit"), [("off", 50), ("blink", 100)])
def test_face_login_disabled_after_many_failures(app, kiosk, grace, clock, media, liveness, limit):
    from facelogin.services.attempts import claim_account, face_disable_limit, record_failure

    app.config["LIVENESS"] = liveness
    with app.app_context():
        assert face_disable_limit() == limit
        user = User.by_username("grace")
        user.face_failures = limit - 2
        db.session.commit()
        assert claim_account(user, "face") == 0
        record_failure(user, "face")
        assert not user.face_disabled and user.face_failures == limit - 1
        clock.advance(10**9)  # after the lock its claim set
        assert claim_account(user, "face") == 0
        record_failure(user, "face")
        assert user.face_disabled
        clock.advance(10**9)
        assert claim_account(user, "face") > 0  # a switched-off path is never claimed
    app.config["LIVENESS"] = "off"
    clock.advance(10**9)  # long after any timed lock
    refused = kiosk.face_login()
    assert refused.status_code == 403 and b"Face login is turned off" in refused.data
    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"


def test_face_attempts_rate_limited_per_address(app, kiosk, grace, clock, media):
    app.config["FACE_RATE_LIMIT"] = 3
    kiosk.look(media["empty_video"])
    for _ in range(3):
        assert kiosk.face_login().status_code == 401
    limited = kiosk.face_login()
    assert limited.status_code == 429 and b"for this kiosk" in limited.data
    clock.advance(61)
    assert kiosk.face_login().status_code == 401  # allowed again, and still no face


def test_attempts_are_recorded(app, kiosk, grace, media):
    kiosk.look(media["luis_video"])
    kiosk.face_login()
    kiosk.look(media["grace_video"])
    kiosk.face_login()
    failure, success = _attempts(app)
    assert (failure.mode, failure.outcome, failure.reason) == ("face", "failure", "not_recognised")
    assert failure.matched_user_id is None and failure.distance > 0.6
    assert failure.client_addr == "127.0.0.1" and failure.liveness == "off" and failure.snapshot is None
    assert (success.outcome, success.matched_user_id) == ("success", 1)
    assert success.distance < 0.3
    assert success.margin is None  # nobody else is enrolled: there is no runner-up to measure


def test_failed_snapshots_saved_and_pruned(app, kiosk, grace, clock, media):
    app.config["SAVE_FAILED_SNAPSHOTS"] = True
    folder = os.path.join(app.config["UPLOAD_FOLDER"], "attempts")
    os.makedirs(folder)
    old = os.path.join(folder, "old.jpg")
    open(old, "wb").close()
    os.utime(old, (clock().timestamp() - 8 * 86400,) * 2)
    kiosk.look(media["luis_video"])
    kiosk.face_login()
    (attempt,) = _attempts(app)
    assert os.listdir(folder) == [attempt.snapshot]  # the new one kept, the 8-day-old one gone
    kiosk.look(media["grace_video"])
    kiosk.face_login()  # successes are never photographed
    assert len(os.listdir(folder)) == 1


# --- The burst decision on real frames: consensus across frames and the veto of a second person.


def _clip(tmp_path, name, frames):
    return write_video(tmp_path / f"{name}.avi", frames)


def test_one_matching_frame_is_not_enough(app, kiosk, photos, tmp_path):
    kiosk.register("grace", photos["grace"])
    grace = on_canvas(load_bgr(photos["grace"]))
    kiosk.look(_clip(tmp_path, "glimpse", [scene(1), scene(2), grace, scene(3)]))
    app.config["CAMERA_FRAMES"] = 4
    refused = kiosk.face_login()
    assert refused.status_code == 401 and b"Face not recognised" in refused.data
    app.config["FACE_CONSENSUS"] = 1
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_a_second_enrolled_person_in_the_burst_vetoes(app, kiosk, photos, tmp_path):
    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    grace, luis = on_canvas(load_bgr(photos["grace"])), on_canvas(load_bgr(photos["luis"]))
    kiosk.look(_clip(tmp_path, "swap", [grace, luis, grace, grace]))
    app.config["CAMERA_FRAMES"] = 4
    refused = kiosk.face_login()
    assert refused.status_code == 401 and b"Face not recognised" in refused.data
    kiosk.look(_clip(tmp_path, "steady", [grace, grace, luis, luis]))
    assert kiosk.face_login().headers["Location"] == "/protected"  # decided before Luis appears


def test_a_kiosk_queue_of_successes_is_never_limited(app, kiosk, grace, clock, media):
    # Every person at a kiosk comes from its one address: successes give their slot back.
    app.config["FACE_RATE_LIMIT"] = 10
    kiosk.look(media["grace_video"])
    for _ in range(15):
        assert kiosk.face_login().headers["Location"] == "/protected"
        kiosk.client.post("/logout")
    kiosk.look(media["empty_video"])
    assert [kiosk.face_login().status_code for _ in range(11)] == [401] * 10 + [429]  # failures still count


def _count_hashes(monkeypatch):
    from facelogin.services import sessions

    checked, real_check = [], sessions.check_password_hash
    monkeypatch.setattr(sessions, "check_password_hash", lambda *a: checked.append(1) or real_check(*a))
    return checked


def _password(kiosk, username, password, address):
    return kiosk.client.post(
        "/login/password", data={"username": username, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def test_unknown_usernames_are_limited_per_address_before_hashing(app, kiosk, grace, clock, monkeypatch):
    app.config["PASSWORD_RATE_LIMIT"] = 4
    hashes = _count_hashes(monkeypatch)
    statuses = [_password(kiosk, f"nobody{i}", "wrong horse", "10.0.0.7").status_code for i in range(6)]
    assert statuses == [401] * 4 + [429] * 2 and len(hashes) == 4  # the refused ones cost no hash
    assert _password(kiosk, "grace", "correct horse", "10.0.0.8").status_code == 302  # other kiosks unaffected
    clock.advance(61)
    assert _password(kiosk, "nobody", "wrong horse", "10.0.0.7").status_code == 401


def test_password_failures_are_limited_across_addresses(app, kiosk, grace, clock, monkeypatch):
    app.config["PASSWORD_GLOBAL_LIMIT"] = 3
    hashes = _count_hashes(monkeypatch)
    assert [_password(kiosk, "nobody", "wrong horse", f"10.0.1.{i}").status_code for i in range(4)] == [401] * 3 + [429]
    assert len(hashes) == 3
    limited = _password(kiosk, "grace", "correct horse", "10.0.2.1")
    assert limited.status_code == 429 and b"password logins on this site" in limited.data


def test_a_password_login_waits_for_a_hashing_slot_then_says_busy(app, kiosk, grace):
    from contextlib import ExitStack

    from facelogin.engine import limits

    app.config.update(PASSWORD_HASH_WAIT=0.05, PASSWORD_RATE_LIMIT=1)  # a busy answer must not spend it
    with ExitStack() as held:
        for _ in range(app.config["PASSWORD_HASH_CONCURRENCY"]):  # every slot taken, as by parallel hashes
            held.enter_context(limits.Slots(app.config["PASSWORD_HASH_CONCURRENCY"], 0, "password hashes").hold())
        busy = kiosk.password_login("grace", "correct horse")
    assert busy.status_code == 503 and b"busy" in busy.data
    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"


def test_a_success_resets_the_count_a_parallel_claim_raised_after_it_was_read(app, grace):
    import threading

    from facelogin.services.attempts import claim_account, record_success

    def claim_elsewhere():
        with app.app_context():  # another request, with its own database session
            assert claim_account(User.by_username("grace"), "password") == 0

    with app.app_context():
        user = User.by_username("grace")  # read with 0 failures
        thread = threading.Thread(target=claim_elsewhere)
        thread.start()
        thread.join()
        record_success(user, "password")
        db.session.commit()
    assert _user(app).password_failures == 0
