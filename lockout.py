"""Throttling and audit: per-account lockout, per-address face rate limits, the attempt log.

NIST SP 800-63B: after LOCKOUT_AFTER consecutive failures each further attempt
waits LOCKOUT_SECONDS, doubling per failure; after FACE_DISABLE_AFTER failures
(twice that with liveness on) face login is off for the account until an admin
turns it back on. Each login path (face, password) keeps its own counter.
"""

import math
import os
import uuid
from datetime import timedelta, timezone

from flask import current_app
from sqlalchemy import func

import faces
from models import LoginAttempt, db, utcnow

FACE_MODES = ("face", "username+face", "face+password")

# Tests replace this to move time without sleeping.
clock = utcnow


def _aware(moment):
    """Return `moment` as an aware UTC datetime (SQLite hands back naive ones)."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def seconds_left(until):
    """Return the whole seconds until `until`, or 0 if it has passed or is unset."""
    if until is None:
        return 0
    return max(0, math.ceil((_aware(until) - clock()).total_seconds()))


def account_wait(user, path):
    """Return how many seconds `user` must wait before trying `path` ("face" or "password") again."""
    return seconds_left(getattr(user, f"{path}_locked_until"))


def face_disable_limit():
    """Return the failure count at which face login is switched off for an account."""
    cfg = current_app.config
    return cfg["FACE_DISABLE_AFTER"] * (2 if cfg.get("LIVENESS", "off") != "off" else 1)


def record_failure(user, path):
    """Count a failure on `user`'s `path` and lock it for a while once there are too many."""
    cfg = current_app.config
    failures = getattr(user, f"{path}_failures") + 1
    setattr(user, f"{path}_failures", failures)
    if failures >= cfg["LOCKOUT_AFTER"]:
        delay = cfg["LOCKOUT_SECONDS"] * 2 ** min(failures - cfg["LOCKOUT_AFTER"], 16)
        setattr(user, f"{path}_locked_until", clock() + timedelta(seconds=delay))
    if path == "face" and failures >= face_disable_limit():
        user.face_disabled = True


def record_success(user, path):
    """Reset `user`'s failure count on `path`."""
    setattr(user, f"{path}_failures", 0)
    setattr(user, f"{path}_locked_until", None)


def address_wait(address):
    """Return how long `address` must wait before its next face attempt (0 if it may try now)."""
    cfg = current_app.config
    since = clock() - timedelta(seconds=cfg["FACE_RATE_WINDOW"])
    recent = db.select(LoginAttempt.at).where(
        LoginAttempt.client_addr == address, LoginAttempt.at > since,
        LoginAttempt.mode.in_(FACE_MODES), LoginAttempt.outcome != "limited")
    count, oldest = db.session.execute(
        db.select(func.count(), func.min(recent.subquery().c.at))).one()
    if count < cfg["FACE_RATE_LIMIT"]:
        return 0
    return max(1, seconds_left(_aware(oldest) + timedelta(seconds=cfg["FACE_RATE_WINDOW"])))


def save_snapshot(rgb):
    """Store a refused attempt's frame under uploads/attempts/ and prune expired ones; return its name."""
    cfg = current_app.config
    folder = os.path.join(cfg["UPLOAD_FOLDER"], "attempts")
    os.makedirs(folder, exist_ok=True)
    prune_snapshots(folder, cfg["SNAPSHOT_RETENTION_DAYS"])
    name = f"{clock():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.jpg"
    with open(os.path.join(folder, name), "wb") as f:
        f.write(faces.encode_jpeg(rgb, quality=80))
    return name


def prune_snapshots(folder, days):
    """Delete snapshots older than `days` days."""
    cutoff = clock().timestamp() - days * 86400
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.getmtime(path) < cutoff:
            os.remove(path)


def log_attempt(mode, outcome, reason, address, claimed=None, matched=None, decision=None,
                liveness="off"):
    """Write one LoginAttempt row (and, if configured, a snapshot of a refused face)."""
    snapshot = None
    if (decision is not None and outcome != "success" and decision.snapshot is not None
            and current_app.config["SAVE_FAILED_SNAPSHOTS"]):
        snapshot = save_snapshot(decision.snapshot)
    finite = (lambda x: x if x is not None and math.isfinite(x) else None)
    db.session.add(LoginAttempt(
        at=clock(), mode=mode, outcome=outcome, reason=reason, client_addr=address,
        claimed_user_id=claimed.id if claimed else None, matched_user_id=matched.id if matched else None,
        distance=finite(decision.distance) if decision else None,
        margin=finite(decision.margin) if decision else None,
        liveness=liveness, snapshot=snapshot,
    ))
    db.session.commit()
