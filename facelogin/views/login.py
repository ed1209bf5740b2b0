"""Home and login: the welcome page, face login, the password fallback and logout."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from facelogin.forms import ActionForm, FaceLoginForm, PasswordLoginForm, first_error, posted_pictures
from facelogin.services import attempts, health, privacy
from facelogin.services.capacity import heavy
from facelogin.services.sessions import (
    NEEDS_KIOSK_TO_LOGIN,
    client_address,
    current_device,
    login_user,
    logout_user,
    may_watch_camera,
    safe_next,
)

bp = Blueprint("login", __name__)


@bp.get("/")
def home():
    """Show the welcome page."""
    return render_template("home.html", form=ActionForm())


def _login_page(error=None, status=200, password_open=False):
    """Render the login page with a fresh challenge (when liveness asks for one) and the password fallback."""
    challenge, nonce = attempts.current_challenge() if current_app.config["LIVENESS"] == "challenge" else (None, None)
    form = FaceLoginForm()
    form.nonce.data = nonce  # a refused POST carries the used nonce: the page must carry the new one
    page = render_template(
        "login.html",
        form=form,
        password_form=PasswordLoginForm(),
        mode=health.login_mode(),
        error=error,
        challenge=challenge,
        movement=attempts.MOVEMENTS.get(challenge),
        kiosk_ok=current_device() is not None,
        show_camera=current_app.config["CAMERA_MODE"] == "browser" or may_watch_camera(),
        face_refused=error is not None and status != 403 and not password_open,
        password_open=password_open,
    )
    return page, status


def _finish_login(outcome):
    """Log the user in and go to their page, or show why not."""
    if outcome.user is None:
        return _login_page(outcome.message, outcome.status, outcome.ask_password)
    notice = privacy.purge_notice(outcome.user)  # read before this login becomes the last one
    login_user(outcome.user)
    if notice:
        flash(notice)
    return redirect(safe_next(request.args.get("next")) or url_for("account.protected"))


@bp.route("/login", methods=("GET", "POST"))
@heavy
def login():
    """Show the login page; a POST logs in whoever the kiosk camera sees (as LOGIN_MODE says)."""
    form = FaceLoginForm()
    if not form.is_submitted():
        return _login_page()
    if current_device() is None:
        return _login_page(NEEDS_KIOSK_TO_LOGIN, 403)
    mode = health.login_mode()  # "username+face" when the 1:N guard asks for the username
    error = first_error(form) if not form.validate() else form.missing(mode)
    if error:
        return _login_page(error, 400)
    outcome = attempts.face_attempt(
        mode, form.username.data, form.password.data, client_address(), posted_pictures(), form.nonce.data
    )
    return _finish_login(outcome)


@bp.post("/login/password")
def login_password():
    """Log in with username and password: the fallback that is always there, on any device."""
    form = PasswordLoginForm()
    if not form.validate_on_submit():
        return _login_page(first_error(form), 400, password_open=True)
    return _finish_login(attempts.password_attempt(form.username.data, form.password.data, client_address()))


@bp.post("/logout")
def logout():
    """End the session and return to the home page."""
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("login.home"))
