"""Sessions, passwords and response headers: who is logged in and how that is kept safe."""

import functools
import os
import secrets
import time
from urllib.parse import urlsplit

from flask import current_app, g, redirect, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from models import User, db, utcnow

CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def load_secret_key(app):
    """Use SECRET_KEY from the config, else one generated once into the instance folder."""
    if app.config.get("SECRET_KEY"):
        return
    path = os.path.join(app.instance_path, "secret_key")
    try:
        with open(path, "x", encoding="ascii") as f:
            os.chmod(path, 0o600)
            f.write(secrets.token_hex(32))
    except FileExistsError:
        pass
    with open(path, encoding="ascii") as f:
        app.config["SECRET_KEY"] = f.read().strip()


def hash_password(password):
    """Hash a password with the configured method (scrypt N=2^17 by default)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


@functools.cache
def _dummy_hash(method):
    """Return a hash to check against when the user does not exist (same cost, no answer)."""
    return generate_password_hash(secrets.token_hex(16), method=method)


def verify_password(user, password):
    """Check `password` for `user` (which may be None) in about the same time either way."""
    stored = user.password_hash if user else _dummy_hash(current_app.config["PASSWORD_HASH_METHOD"])
    return check_password_hash(stored, password) and user is not None


def login_user(user):
    """Start a fresh session for `user`: old session data and old cookies are discarded."""
    session.clear()
    user.session_token = secrets.token_urlsafe(32)
    user.last_login_at = utcnow()
    db.session.commit()
    session["user_id"] = user.id
    session["token"] = user.session_token
    session["seen"] = time.time()


def logout_user():
    """End the session; copies of the old cookie stop working too."""
    user = g.get("user")
    if user is not None:
        user.session_token = None
        db.session.commit()
    session.clear()
    g.user = None


def load_logged_in_user():
    """Put the logged-in user (or None) on `g`, ending sessions that are stale or idle."""
    g.user = None
    user_id, token = session.get("user_id"), session.get("token")
    if user_id is None:
        return
    user = db.session.get(User, user_id)
    idle = time.time() - session.get("seen", 0) > current_app.config["KIOSK_IDLE_SECONDS"]
    if user is None or not token or not secrets.compare_digest(token, user.session_token or "") or idle:
        session.clear()
        return
    session["seen"] = time.time()
    g.user = user


def login_required(view):
    """Redirect anonymous visitors to the login page, which brings them back afterwards."""
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("auth.login", next=request.path))
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
    if g.get("user") is not None or request.endpoint in ("auth.protected", "auth.my_photo"):
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app):
    """Install the secret key and the per-request hooks."""
    load_secret_key(app)
    app.before_request(load_logged_in_user)
    app.after_request(set_security_headers)
