"""Sessions, passwords and kiosk devices: who is logged in, from which kiosk, and how that is kept safe."""

import functools
import hashlib
import ipaddress
import os
import re
import secrets
import threading
from datetime import timedelta
from urllib.parse import urlsplit

from flask import abort, current_app, flash, g, redirect, request, session, url_for
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import check_password_hash, generate_password_hash

from facelogin.engine import limits
from facelogin.services import storage
from models import KioskDevice, User, as_utc, db, utcnow

# The account rules, written once: the forms, `flask users` and the importer use them.
USERNAME_RULE = re.compile(r"[A-Za-z0-9_.-]{3,64}")
USERNAME_HELP = "Use 3 to 64 letters, digits, dots, dashes or underscores for the username"
PASSWORD_LENGTH = (8, 128)
PASSWORD_HELP = "Use {} to {} characters for the password".format(*PASSWORD_LENGTH)

BAD_ADDRESS = "Bad forwarded address: this request's client address is not an IP address - ask staff to check the proxy"
SESSION_TOO_OLD = "You were logged out because you logged in more than {} hours ago - please log in again."
SESSION_IDLE = "You were logged out after {} without activity - please log in again."
clock = utcnow  # tests move it instead of waiting

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The kiosk page may use this site's camera (browser camera mode); nothing else it never needs.
PERMISSIONS_POLICY = "camera=(self), microphone=(), geolocation=(), payment=(), usb=(), display-capture=()"
HSTS = "max-age=31536000; includeSubDomains"


def load_secret_key(app):
    """Use SECRET_KEY from the config, else one generated once into the instance folder."""
    if app.config.get("SECRET_KEY"):
        return
    path = os.path.join(app.instance_path, "secret_key")
    try:
        with storage.create_private(path) as f:
            f.write(secrets.token_hex(32).encode("ascii"))
    except FileExistsError:
        pass
    with open(path, encoding="ascii") as f:
        app.config["SECRET_KEY"] = f.read().strip()


def hashing():
    """Hold one of the process's hashing slots, or raise limits.Busy after PASSWORD_HASH_WAIT seconds."""
    # Each scrypt hash takes 128 MiB and a core for a while: without a cap, 16 clients forced
    # 63 parallel hashes (+1 GiB) and a real login waited 5 s.
    cfg = current_app.config
    return limits.Slots(cfg["PASSWORD_HASH_CONCURRENCY"], cfg["PASSWORD_HASH_WAIT"], "password hashes").hold()


def hash_password(password):
    """Hash a password with the configured method (scrypt N=2^17 by default); limits.Busy if all slots stay taken."""
    with hashing():
        return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


_dummy_hashes = {}
_dummy_lock = threading.Lock()


def _dummy_hash(method):
    """Return a hash to check against when the user does not exist (same cost, no answer)."""
    # Made once per method, by one thread: ten unknown usernames at start-up once made ten
    # of these at the same time, outside the hashing slots.
    with _dummy_lock:
        if method not in _dummy_hashes:
            _dummy_hashes[method] = generate_password_hash(secrets.token_hex(16), method=method)
        return _dummy_hashes[method]


def check_password(user, password):
    """Check `password` for `user` (which may be None) in about the same time either way; hold hashing() first."""
    stored = user.password_hash if user else _dummy_hash(current_app.config["PASSWORD_HASH_METHOD"])
    return check_password_hash(stored, password) and user is not None


def verify_password(user, password):
    """Check `password` for `user` (which may be None) holding a hashing slot; limits.Busy if none comes free."""
    with hashing():
        return check_password(user, password)


def login_user(user):
    """Start a fresh session for `user`: old session data and old cookies are discarded."""
    session.clear()
    user.session_token = secrets.token_urlsafe(32)
    user.last_login_at = clock()
    db.session.commit()
    session["user_id"] = user.id
    session["token"] = user.session_token
    session["seen"] = clock().timestamp()


def client_address():
    """Return the client's IP address, normalised; refuse the request (400) when it is not one."""
    if "client_address" not in g:
        # Behind --trusted-proxy, REMOTE_ADDR is whatever the proxy's X-Forwarded-For said: it goes
        # into rate limits and the audit log only once it has been read as an IP address.
        raw = request.remote_addr or ""
        try:
            address = ipaddress.ip_address(raw.partition("%")[0])  # without an IPv6 zone: the same host
        except ValueError:
            current_app.logger.warning("refused a request from a bad client address %r", raw[:100])
            abort(400, BAD_ADDRESS)
        g.client_address = str(getattr(address, "ipv4_mapped", None) or address)
    return g.client_address


def check_client_address():
    """Refuse any request whose client address is not an IP address (a hook: it returns nothing)."""
    client_address()


def logout_user():
    """End the session; copies of the old cookie stop working too."""
    user = g.get("user")
    if user is not None:
        user.session_token = None
        db.session.commit()
    session.clear()
    g.user = None


def spoken_duration(seconds):
    """Return `seconds` as a person says it: "2 minutes", "1 minute", "90 seconds"."""
    total = max(1, round(seconds))  # KIOSK_IDLE_SECONDS may be a fraction
    minutes, rest = divmod(total, 60)
    if minutes and not rest:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{total} second{'s' if total != 1 else ''}"


# Requests a page makes by itself (the camera view, files): they are not the person's activity,
# so they never keep an idle session alive.
BY_ITSELF = frozenset({"camera.look", "camera.stream", "static"})


def load_logged_in_user():
    """Put the logged-in user (or None) on `g`, ending sessions that are stale, idle or too old."""
    g.user = None
    user_id, token = session.get("user_id"), session.get("token")
    if user_id is None:
        return
    user = db.session.get(User, user_id)
    if user is None or not token or not secrets.compare_digest(token, user.session_token or ""):
        session.clear()  # logged out elsewhere, or deleted: nothing to explain at this kiosk
        return
    idle_seconds = current_app.config["KIOSK_IDLE_SECONDS"]
    if clock().timestamp() - session.get("seen", 0) > idle_seconds:
        session.clear()
        # Said on the next page, whether idle.js opened the login page or a late click arrived.
        flash(SESSION_IDLE.format(spoken_duration(idle_seconds)))
        return
    # last_login_at is when this session's token was issued (login_user sets both).
    max_hours = current_app.config["SESSION_MAX_HOURS"]
    if user.last_login_at is None or as_utc(user.last_login_at) + timedelta(hours=max_hours) <= clock():
        g.user = user
        logout_user()  # the old cookie stops working too
        flash(SESSION_TOO_OLD.format(max_hours))
        return
    if request.endpoint not in BY_ITSELF:
        session["seen"] = clock().timestamp()
    g.user = user


def login_required(view):
    """Redirect anonymous visitors to the login page, which brings them back afterwards."""

    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("login.login", next=request.path))
        return view(**kwargs)

    return wrapped


def safe_next(target):
    """Return `target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return None
    return target


def set_security_headers(response):
    """Add the headers every response carries."""
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    if current_app.config["SESSION_COOKIE_SECURE"] and request.is_secure:
        # Only over HTTPS (RFC 6797 8.1): secure cookies say the site is served over HTTPS only.
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if g.get("user") is not None or request.endpoint in ("account.protected", "account.photo"):
        response.headers["Cache-Control"] = "no-store"
    return response


# --- kiosk devices ----------------------------------------------------------------------------
# A kiosk browser is registered once (`flask kiosks add NAME` prints a one-time path); opening
# that path stores a long-lived random secret in an HttpOnly cookie. The database keeps only
# SHA-256 hashes: the secrets are 256-bit random, so a plain hash cannot be guessed backwards.
DEVICE_COOKIE = "kiosk_device"
NEEDS_KIOSK = "{} works only on a registered kiosk - ask staff to register this kiosk, or {}"
NEEDS_KIOSK_TO_LOGIN = NEEDS_KIOSK.format("Face login", "log in with your password")
NEEDS_KIOSK_FOR_CAMERA = NEEDS_KIOSK.format("The kiosk camera", "use a photo file")
DEVICE_COOKIE_DAYS = 5 * 365
SEEN_EVERY = timedelta(minutes=5)  # how often last_seen_at is written


class DeviceError(Exception):
    """A kiosk-device action was refused; the message says why."""


def _digest(secret):
    """Return the hex SHA-256 of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def add_device(name):
    """Register kiosk `name` (or give an unused one a fresh link); return the one-time enrolment code."""
    if not USERNAME_RULE.fullmatch(name):
        raise DeviceError("Use 3 to 64 letters, digits, dots, dashes or underscores for the kiosk name")
    device = db.session.execute(db.select(KioskDevice).where(KioskDevice.name == name)).scalar_one_or_none()
    if device is not None and device.secret_hash and device.revoked_at is None:
        raise DeviceError(f"kiosk {name} is registered already - revoke it first to register another browser")
    device = device or KioskDevice(name=name)
    code = secrets.token_urlsafe(24)
    device.enrol_code_hash = _digest(code)
    device.enrol_expires_at = utcnow() + timedelta(minutes=current_app.config["KIOSK_ENROL_MINUTES"])
    device.secret_hash, device.revoked_at, device.enrolled_at = None, None, None
    db.session.add(device)
    db.session.commit()
    return code


def enrol_device(code):
    """Use a one-time enrolment code; return (device, secret for the cookie), or None if it is not valid."""
    secret, now = secrets.token_urlsafe(32), utcnow()
    # One statement uses the code: of two browsers racing with one link, only one is registered.
    used = db.session.execute(
        db.update(KioskDevice)
        .where(
            KioskDevice.enrol_code_hash == _digest(code),
            KioskDevice.revoked_at.is_(None),
            KioskDevice.enrol_expires_at > now,
        )
        .values(
            secret_hash=_digest(secret), enrol_code_hash=None, enrol_expires_at=None, enrolled_at=now, last_seen_at=now
        )
    )
    db.session.commit()
    if used.rowcount != 1:
        return None
    device = db.session.execute(db.select(KioskDevice).where(KioskDevice.secret_hash == _digest(secret))).scalar_one()
    return device, secret


def set_device_cookie(response, secret):
    """Store the device secret in this browser: HttpOnly, SameSite=Strict, Secure when sessions are."""
    response.set_cookie(
        DEVICE_COOKIE,
        secret,
        max_age=DEVICE_COOKIE_DAYS * 86400,
        httponly=True,
        samesite="Strict",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )


def current_device():
    """Return the registered, unrevoked kiosk this request comes from, or None."""
    if "device" not in g:
        secret = request.cookies.get(DEVICE_COOKIE, "")
        device = None
        if 20 <= len(secret) <= 128:
            device = db.session.execute(
                db.select(KioskDevice).where(
                    KioskDevice.secret_hash == _digest(secret), KioskDevice.revoked_at.is_(None)
                )
            ).scalar_one_or_none()
        if device is not None and (device.last_seen_at is None or as_utc(device.last_seen_at) + SEEN_EVERY < utcnow()):
            device.last_seen_at = utcnow()
            db.session.commit()
        g.device = device
    return g.device


def revoke_device(name):
    """Revoke kiosk `name`: its browser can no longer use face login or the camera."""
    device = db.session.execute(db.select(KioskDevice).where(KioskDevice.name == name)).scalar_one_or_none()
    if device is None or device.revoked_at is not None:
        raise DeviceError(f"no registered kiosk called {name}")
    device.revoked_at, device.secret_hash, device.enrol_code_hash = utcnow(), None, None
    db.session.commit()
    return device


def list_devices():
    """Return every kiosk device, newest first."""
    return db.session.execute(db.select(KioskDevice).order_by(KioskDevice.id.desc())).scalars().all()


def may_watch_camera():
    """Return True if this request may see the kiosk camera: a registered kiosk or a logged-in admin."""
    return current_device() is not None or bool(g.get("user") is not None and g.user.is_admin)


def camera_permit():
    """Return a check of whether this request's viewer may still watch the camera, or None if it may not now.

    The check reads the database afresh each time (one primary-key look-up, far cheaper than the
    face detection on each preview frame): a revoked kiosk, or an admin who logged out, is demoted
    or logged in elsewhere, fails it. A database that cannot answer fails it too.
    """
    device, user = current_device(), g.get("user")
    if device is not None:
        query = db.select(KioskDevice.id).where(
            KioskDevice.id == device.id, KioskDevice.secret_hash == device.secret_hash, KioskDevice.revoked_at.is_(None)
        )
    elif user is not None and user.is_admin:
        query = db.select(User.id).where(User.id == user.id, User.session_token == user.session_token, User.is_admin)
    else:
        return None
    app = current_app._get_current_object()

    def still_allowed():
        # Its own app context: a fresh database session, closed again after the look-up.
        with app.app_context():
            try:
                return db.session.execute(query).first() is not None
            except SQLAlchemyError:
                return False

    return still_allowed


def page_context():
    """Give every page the camera mode, and a test of whether it may show the live camera view."""
    # A callable: only the pages that show the camera pay for the device look-up.
    return {"camera_mode": current_app.config["CAMERA_MODE"], "can_preview": may_watch_camera}


def init_app(app):
    """Install the secret key, the per-request hooks and the page context."""
    load_secret_key(app)
    app.before_request(check_client_address)  # first: nothing else runs for a request from a bad address
    app.before_request(load_logged_in_user)
    app.after_request(set_security_headers)
    app.context_processor(page_context)
