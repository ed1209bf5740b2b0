"""A login attempt from start to finish: throttle, capture, liveness, decide, record.

NIST SP 800-63B: after LOCKOUT_AFTER consecutive failures each further attempt
waits LOCKOUT_SECONDS, doubling per failure; after FACE_DISABLE_AFTER failures
(twice that with liveness on) face login is off for the account until an admin
turns it back on. Each login path (face, password) keeps its own counter, and
each kiosk address has a face-attempt rate limit.
"""

import math
import secrets
import uuid
from datetime import timedelta
from typing import NamedTuple

from flask import current_app, session
from sqlalchemy import case, false, or_

from facelogin.config import LOGIN_MODES, challenge_bars
from facelogin.engine import faces, limits, liveness
from facelogin.engine.camera import CameraError, kiosk_frames
from facelogin.services import health, learning, storage, throttle
from facelogin.services.gallery import get_gallery, still_matches
from facelogin.services.sessions import check_password, hashing, verify_password
from models import LoginAttempt, LoginChallenge, User, as_utc, db, utcnow

FACE_MODES = LOGIN_MODES  # every login mode but the password fallback uses the face
FACE_MESSAGES = {
    "not_recognised": "Face not recognised - try again, or log in with your password",
    "no_face": "No face seen - stand in front of the camera and look at it",
    "dark": "No face seen - it is too dark here; face the light",
    "too_small": "No face seen - please step closer to the camera",
    "many_faces": "One person at a time, please - we saw more than one face",
    "no_blink": "Please blink - look at the camera, press the button, then blink once",
}
NOT_RECOGNISED = {
    "face": FACE_MESSAGES["not_recognised"],
    "username+face": "Face not recognised for that username - try again, or log in with your password",
    "face+password": "Face or password not recognised - try again, or log in with your password",
}
# A refused movement says what to do, never which check failed: that would help an attacker tune.
DO_THE_MOVEMENT = "Please look straight at the camera, then {} and back"
MOVEMENTS = {
    "left": "turn your head to your left",
    "right": "turn your head to your right",
    "up": "tilt your head up",
    "down": "tilt your head down",
}
NO_CHALLENGE = "This login page has expired - please try again"
WRONG_PASSWORD = "Wrong username or password"
FACE_OFF = "Face login is turned off for this account - log in with your password, or ask staff"
BUSY = "The system is busy - please try again in a moment"
ADMIN_NEEDS_PASSWORD = "Administrators log in with their password - your face alone cannot open this account"

# Tests replace this (and throttle.clock) to move time without sleeping.
clock = utcnow


class Outcome(NamedTuple):
    """The user to log in, or the message and status to show instead."""

    user: User | None
    message: str | None = None
    status: int = 200
    ask_password: bool = False  # show the password form open (an admin's face was recognised)


# --- the challenge ---------------------------------------------------------------------------


CHALLENGE_LIFETIME = timedelta(minutes=10)  # a login page left open longer draws a new movement


def issue_challenge():
    """Draw a new random head movement for this session's next attempt; return (challenge, nonce)."""
    now = clock()
    challenge, nonce = secrets.choice(liveness.CHALLENGES), secrets.token_urlsafe(16)
    db.session.execute(db.delete(LoginChallenge).where(LoginChallenge.issued_at < now - timedelta(days=1)))
    db.session.add(LoginChallenge(nonce=nonce, direction=challenge, issued_at=now))
    db.session.commit()
    session["challenge"] = nonce
    return challenge, nonce


def current_challenge():
    """Return this session's pending (challenge, nonce), drawing one if there is none or it is used or old."""
    nonce = session.get("challenge")
    pending = db.session.get(LoginChallenge, nonce) if isinstance(nonce, str) else None
    if pending is not None and pending.used_at is None and as_utc(pending.issued_at) > clock() - CHALLENGE_LIFETIME:
        return pending.direction, nonce
    return issue_challenge()


def take_challenge(nonce):
    """Use up this session's challenge; return its direction if `nonce` is the one issued with it, once only."""
    mine = session.pop("challenge", None)
    if not nonce or not isinstance(mine, str) or not secrets.compare_digest(mine, str(nonce)):
        return None
    now = clock()
    # One statement marks it used: of two requests racing with one nonce (or a replayed
    # copy of an old session cookie), only one finds it unused.
    used = db.session.execute(
        db.update(LoginChallenge)
        .where(
            LoginChallenge.nonce == mine,
            LoginChallenge.used_at.is_(None),
            LoginChallenge.issued_at > now - CHALLENGE_LIFETIME,
        )
        .values(used_at=now)
    )
    db.session.commit()
    return db.session.get(LoginChallenge, mine).direction if used.rowcount == 1 else None


def movement_message(challenge):
    """Return what a person must do to answer `challenge`."""
    return DO_THE_MOVEMENT.format(MOVEMENTS[challenge])


# --- throttling -------------------------------------------------------------------------------


def seconds_left(until):
    """Return the whole seconds until `until`, or 0 if it has passed or is unset."""
    if until is None:
        return 0
    return max(0, math.ceil((as_utc(until) - clock()).total_seconds()))


def account_wait(user, path):
    """Return how many seconds `user` must wait before trying `path` ("face" or "password") again."""
    return seconds_left(getattr(user, f"{path}_locked_until"))


def is_locked(user):
    """Return True if either login path of the user is locked or switched off right now."""
    return bool(user.face_disabled or account_wait(user, "face") or account_wait(user, "password"))


def face_disable_limit():
    """Return the failure count at which face login is switched off for an account."""
    cfg = current_app.config
    return cfg["FACE_DISABLE_AFTER"] * (2 if cfg["LIVENESS"] != "off" else 1)


def claim_account(user, path):
    """Count an attempt on `user`'s `path` ("face" or "password") before it is checked; return 0 or the wait."""
    cfg = current_app.config
    now, after, base = clock(), cfg["LOCKOUT_AFTER"], cfg["LOCKOUT_SECONDS"]
    failures, until = getattr(User, f"{path}_failures"), getattr(User, f"{path}_locked_until")
    # The claim is the failure, counted in one UPDATE before the check runs: of 40 parallel
    # wrong passwords, only LOCKOUT_AFTER find the path open. The claim that reaches
    # LOCKOUT_AFTER also sets the lock, its 2**k wait picked by a CASE on the old count;
    # a success then clears both (record_success).
    waits = [(failures == after - 1 + k, now + timedelta(seconds=base * 2**k)) for k in range(16)]
    lock = case(*waits, else_=now + timedelta(seconds=base * 2**16))
    claim = db.update(User).where(User.id == user.id, or_(until.is_(None), until <= now))
    if path == "face":
        claim = claim.where(User.face_disabled == false())
    taken = db.session.execute(
        claim.values(
            {failures: failures + 1, until: case((failures + 1 >= after, lock), else_=until)}
        ).execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    db.session.refresh(user)
    return 0 if taken else max(1, account_wait(user, path))


def record_failure(user, path):
    """Switch face login off for `user` once its counted face failures reach the limit."""
    if path == "face":
        db.session.execute(
            db.update(User)
            .where(User.id == user.id, User.face_failures >= face_disable_limit())
            .values(face_disabled=True)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        db.session.refresh(user)


def record_success(user, path):
    """Reset `user`'s failure count and lock on `path`."""
    # A statement, not an attribute change: the ORM skips an UPDATE when the value it last read is
    # already 0, while a parallel attempt may have claimed since; the count then crept up to a lock.
    db.session.execute(
        db.update(User)
        .where(User.id == user.id)
        .values({f"{path}_failures": 0, f"{path}_locked_until": None})
        .execution_options(synchronize_session=False)
    )


def claim_address(path, address):
    """Claim a `path` ("face" or "password") attempt for `address` before it is checked; return 0 or the wait."""
    cfg = current_app.config
    if path == "face":
        return throttle.claim(f"face:{address}", cfg["FACE_RATE_LIMIT"], cfg["FACE_RATE_WINDOW"])
    return throttle.claim(f"password:{address}", cfg["PASSWORD_RATE_LIMIT"], cfg["PASSWORD_RATE_WINDOW"])


def _wait(seconds, who="this account"):
    """Return the refusal for a throttled attempt."""
    return Outcome(None, f"Too many attempts for {who} - please wait {seconds} seconds and try again", 429)


# --- the audit log ----------------------------------------------------------------------------


def save_snapshot(rgb):
    """Store a refused attempt's frame under uploads/attempts/ and prune expired ones; return its name."""
    folder = storage.folder("attempts")
    storage.delete_older_than(folder, current_app.config["SNAPSHOT_RETENTION_DAYS"] * 86400, clock().timestamp())
    name = f"{clock():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.jpg"
    storage.write_atomically(f"{folder}/{name}", faces.encode_jpeg(rgb, quality=80))
    return name


def log_attempt(mode, outcome, reason, address, claimed=None, matched=None, decision=None, challenge=None):
    """Write one LoginAttempt row (and, if configured, a snapshot of a refused face); return it."""
    snapshot = None
    if (
        decision is not None
        and outcome != "success"
        and decision.snapshot is not None
        and current_app.config["SAVE_FAILED_SNAPSHOTS"]
    ):
        snapshot = save_snapshot(decision.snapshot)

    def finite(x):
        return x if x is not None and math.isfinite(x) else None

    db.session.add(
        row := LoginAttempt(
            at=clock(),
            mode=mode,
            outcome=outcome,
            reason=reason,
            client_addr=address,
            claimed_user_id=claimed.id if claimed else None,
            matched_user_id=matched.id if matched else None,
            distance=finite(decision.distance) if decision else None,
            margin=finite(decision.margin) if decision else None,
            liveness=decision.liveness if decision else None,
            challenge=challenge,
            snapshot=snapshot,
        )
    )
    db.session.commit()
    return row


# --- the face login ---------------------------------------------------------------------------


def _frames(count, posted, timeout=None):
    """Give up to `count` BGR frames: from the server camera or the kiosk browser's `posted` pictures."""
    cfg = current_app.config
    browser = cfg["CAMERA_MODE"] == "browser"
    return kiosk_frames(cfg["CAMERA_SOURCE"], count, timeout or cfg["CAMERA_TIMEOUT"], browser, posted)


def _decide(rgb_frames, index, consensus=None, tolerance=None):
    """Decide RGB frames against `index` with `tolerance` (else the configured one), margin and face size."""
    cfg = current_app.config
    return faces.decide_burst(
        rgb_frames,
        index,
        tolerance=tolerance or cfg["FACE_TOLERANCE"],
        margin=cfg["FACE_MARGIN"],
        consensus=consensus or cfg["FACE_CONSENSUS"],
        min_face_height=cfg["MIN_FACE_HEIGHT"],
        detect_width=cfg["DETECT_WIDTH"],
    )


def _watch(frames, challenge):
    """Watch RGB frames for the configured liveness sign: a blink, or the `challenge` movement."""
    cfg = current_app.config
    common = dict(min_face_height=cfg["MIN_FACE_HEIGHT"], detect_width=cfg["DETECT_WIDTH"])
    if cfg["LIVENESS"] == "blink":
        return liveness.watch_for_blink(
            frames,
            ratio=cfg["BLINK_RATIO"],
            min_closed=cfg["BLINK_MIN_FRAMES"],
            max_closed=cfg["BLINK_MAX_FRAMES"],
            **common,
        )
    return liveness.watch_for_challenge(frames, challenge, **challenge_bars(cfg))


def face_login(index=None, posted=(), challenge=None, tolerance=None):
    """Take a burst (CAMERA_SOURCE, or the frames the kiosk browser posted) and decide it against `index`.

    `index` defaults to everyone enrolled, `tolerance` to FACE_TOLERANCE.
    With liveness on, only landmarks run until the blink or the movement is seen;
    then the frames around it must all match one person, so one face cannot move
    while another is matched. Returns a faces.Decision; a CameraError passes up.
    """
    cfg = current_app.config
    index = get_gallery().index() if index is None else index
    if cfg["LIVENESS"] == "off":
        with _frames(cfg["CAMERA_FRAMES"], posted) as frames:
            return _decide((faces.frame_to_rgb(f) for f in frames), index, tolerance=tolerance)
    if cfg["LIVENESS"] == "blink":
        count, timeout = cfg["LIVENESS_FRAMES"], cfg["CAMERA_TIMEOUT"]
    else:  # a genuine movement takes about 2 s: watch for CHALLENGE_SECONDS at most
        count, timeout = cfg["CHALLENGE_FRAMES"], cfg["CHALLENGE_SECONDS"]
    with _frames(count, posted, timeout) as frames:
        watch = _watch((faces.frame_to_rgb(f) for f in frames), challenge)
    if not watch.frames:
        return faces.Decision(
            None, watch.reason, float("inf"), float("nan"), watch.seen, 0, watch.snapshot, liveness="failed"
        )
    decision = _decide(watch.frames, index, consensus=len(watch.frames), tolerance=tolerance)
    return decision._replace(frames=watch.seen, liveness="passed")


def _refusal(mode, reason, challenge):
    """Return the message for a refused face attempt."""
    if reason in ("not_recognised", "wrong password"):
        return NOT_RECOGNISED[mode]
    if reason in FACE_MESSAGES:
        return FACE_MESSAGES[reason]
    if challenge is not None:
        return movement_message(challenge)
    return NOT_RECOGNISED[mode]


def face_attempt(mode, username, password, address, posted=(), nonce=None):
    """Run one face login in `mode` ("face", "username+face" or "face+password")."""
    challenge = take_challenge(nonce) if current_app.config["LIVENESS"] == "challenge" else None
    if current_app.config["LIVENESS"] == "challenge" and challenge is None:
        return Outcome(None, NO_CHALLENGE, 400)
    # Every limit is claimed before the face is looked at; only a success gives its slots back.
    if wait := claim_address("face", address):
        log_attempt(mode, "limited", "address rate limit", address, challenge=challenge)
        return _wait(wait, "this kiosk")
    claimed = User.by_username(username) if mode != "face" and username else None
    if claimed is not None and (wait := claim_account(claimed, "face")):
        log_attempt(mode, "locked", "face login off or locked", address, claimed=claimed, challenge=challenge)
        return Outcome(None, FACE_OFF, 403) if claimed.face_disabled else _wait(wait)
    index = get_gallery().index()
    # Face-only (1:N): the guard's tolerance for this gallery (health.py), measured once per gallery version.
    tolerance = health.face_tolerance(mode, index)
    if mode != "face":
        # 1:1: compare only with the claimed user's templates (none if there is no such user).
        index = index.only(claimed.id if claimed else None)
    try:
        decision = face_login(index, posted, challenge, tolerance)
        password_ok = mode != "face+password" or verify_password(claimed, password or "")
    except CameraError as e:
        log_attempt(mode, "error", f"camera {e.reason}", address, claimed=claimed, challenge=challenge)
        return Outcome(None, str(e), e.status)
    except limits.Busy:
        throttle.release(f"face:{address}")  # the server was busy, not the person wrong
        log_attempt(mode, "error", "busy", address, claimed=claimed, challenge=challenge)
        return Outcome(None, BUSY, 503)
    matched = db.session.get(User, decision.label) if decision.label is not None else None
    if matched is not None and not still_matches(matched.id, decision.encoding, tolerance):
        matched = None
    if decision.label is not None and matched is None:
        # This process's index may be behind the database: the face was erased, reset or removed in
        # another process a moment ago (a notification behind on PostgreSQL, a poll behind on SQLite).
        # The face must still match what is stored now, or it is a stranger's, and nothing measured
        # against the erased face is kept.
        decision = decision._replace(
            label=None, reason="not_recognised", distance=float("inf"), margin=float("nan"), snapshot=None
        )
    if matched is None or not password_ok:
        if claimed is not None:
            record_failure(claimed, "face")
        reason = decision.reason if matched is None else "wrong password"
        log_attempt(mode, "failure", reason, address, claimed, matched, decision, challenge)
        return Outcome(None, _refusal(mode, reason, challenge), 401)
    if matched.face_disabled or (claimed is None and (wait := account_wait(matched, "face"))):
        log_attempt(mode, "locked", "face login off or locked", address, claimed, matched, decision, challenge)
        return Outcome(None, FACE_OFF, 403) if matched.face_disabled else _wait(wait)
    if matched.is_admin and mode != "face+password":
        # A face alone must never open /admin: the password is the second factor.
        log_attempt(mode, "refused", "admin needs password", address, claimed, matched, decision, challenge)
        return Outcome(None, ADMIN_NEEDS_PASSWORD, 401, ask_password=True)
    record_success(matched, "face")
    throttle.release(f"face:{address}")
    attempt = log_attempt(mode, "success", "match", address, claimed, matched, decision, challenge)
    learning.learn_from_login(matched, decision, attempt)  # only a confident live login is learned
    return Outcome(matched)


def password_attempt(username, password, address):
    """Check a username and password, claiming the address, site-wide and account limits before hashing."""
    cfg = current_app.config
    if wait := claim_address("password", address):
        log_attempt("password", "limited", "address rate limit", address)
        return _wait(wait, "this kiosk")
    if wait := throttle.claim("password:*", cfg["PASSWORD_GLOBAL_LIMIT"], cfg["PASSWORD_RATE_WINDOW"]):
        # Many addresses together: a guessing run spread over a botnet, or a flood of hashes.
        log_attempt("password", "limited", "site rate limit", address)
        return _wait(wait, "password logins on this site")
    try:
        with hashing():  # before the account's claim: a busy server must not count against the person
            outcome = _check_password(username, password, address)
    except limits.Busy:
        log_attempt("password", "error", "busy", address)
        outcome = Outcome(None, BUSY, 503)
    if outcome.user is not None or outcome.status == 503:
        # A success, or a server too busy to check: neither is a failure of this address.
        throttle.release(f"password:{address}")
        throttle.release("password:*")
    return outcome


def _check_password(username, password, address):
    """Claim the account, then check the password (with a hashing slot held)."""
    user = User.by_username(username)
    if user is not None and (wait := claim_account(user, "password")):
        log_attempt("password", "locked", "account locked", address, claimed=user)
        return _wait(wait)
    if not check_password(user, password):
        log_attempt("password", "failure", "wrong password", address, claimed=user)
        return Outcome(None, WRONG_PASSWORD, 401)
    record_success(user, "password")
    log_attempt("password", "success", "password", address, claimed=user, matched=user)
    return Outcome(user)
