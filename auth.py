"""The kiosk's pages: home, register, login (face and password), protected, logout."""

import os

from flask import Blueprint, abort, flash, g, redirect, render_template, send_file, url_for

from camera import CameraError
from enroll import EnrollError, known_face_path, register_user
from forms import ActionForm, PasswordLoginForm, RegisterForm, first_error
from login import FACE_MESSAGES, face_login
from models import User, db
from security import login_required, login_user, logout_user, verify_password

bp = Blueprint("auth", __name__)

WRONG_PASSWORD = "Wrong username or password"


@bp.get("/")
def home():
    """Show the welcome page."""
    return render_template("home.html", form=ActionForm())


@bp.route("/register", methods=("GET", "POST"))
def register():
    """Enrol a new user from a username, a password and a face photo."""
    form = RegisterForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("register.html", form=form, error=first_error(form)), status
    try:
        user = register_user(form.username.data, form.password.data, form.photo.data)
    except EnrollError as e:
        return render_template("register.html", form=form, error=str(e)), e.status
    flash(f"Welcome, {user.username}! You can now log in by looking at the camera.")
    return redirect(url_for("auth.login"))


def _login_page(error=None, status=200):
    """Render the login page with both forms and an optional error."""
    page = render_template("login.html", form=ActionForm(), password_form=PasswordLoginForm(),
                           error=error)
    return page, status


@bp.route("/login", methods=("GET", "POST"))
def login():
    """Show the login page; a POST logs in whoever the kiosk camera sees."""
    if not ActionForm().validate_on_submit():
        return _login_page()
    try:
        decision = face_login()
    except CameraError as e:
        return _login_page(str(e), 503)
    user = db.session.get(User, decision.label) if decision.label is not None else None
    if user is None:
        return _login_page(FACE_MESSAGES.get(decision.reason, FACE_MESSAGES["not_recognised"]), 401)
    login_user(user)
    return redirect(url_for("auth.protected"))


@bp.post("/login/password")
def login_password():
    """Log in with username and password: the fallback that is always there."""
    form = PasswordLoginForm()
    if not form.validate_on_submit():
        return _login_page(first_error(form), 400)
    user = User.by_username(form.username.data)
    if not verify_password(user, form.password.data):
        return _login_page(WRONG_PASSWORD, 401)
    login_user(user)
    return redirect(url_for("auth.protected"))


@bp.get("/protected")
@login_required
def protected():
    """Greet the logged-in user with their enrolled photo."""
    return render_template("protected.html", form=ActionForm())


@bp.get("/protected/photo")
@login_required
def my_photo():
    """Serve the logged-in user's enrolled face photo, to that user only."""
    path = known_face_path(g.user.id)
    if not os.path.isfile(path):
        abort(404)
    return send_file(path, mimetype="image/jpeg", max_age=0)


@bp.post("/logout")
def logout():
    """End the session and return to the home page."""
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("auth.home"))
