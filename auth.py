"""The kiosk's pages: home, register, login (face and password), protected, logout."""

import os

from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request,
                   send_file, url_for)

from attempts import face_attempt, password_attempt
from enroll import EnrollError, has_face_photo, known_face_path, register_user
from forms import ActionForm, FaceLoginForm, PasswordLoginForm, PhotoForm, RegisterForm, first_error
from security import login_required, login_user, logout_user, safe_next

bp = Blueprint("auth", __name__)


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
    """Render the login page (face form for the configured mode, password fallback)."""
    page = render_template("login.html", form=FaceLoginForm(), password_form=PasswordLoginForm(),
                           mode=current_app.config["LOGIN_MODE"], error=error)
    return page, status


def _finish_login(outcome):
    """Log the user in and go to the protected page, or show why not."""
    if outcome.user is None:
        return _login_page(outcome.message, outcome.status)
    login_user(outcome.user)
    return redirect(safe_next(request.args.get("next")) or url_for("auth.protected"))


@bp.route("/login", methods=("GET", "POST"))
def login():
    """Show the login page; a POST logs in whoever the kiosk camera sees (as LOGIN_MODE says)."""
    form = FaceLoginForm()
    if not form.is_submitted():
        return _login_page()
    mode = current_app.config["LOGIN_MODE"]
    error = first_error(form) if not form.validate() else form.missing(mode)
    if error:
        return _login_page(error, 400)
    return _finish_login(face_attempt(mode, form.username.data, form.password.data, request.remote_addr))


@bp.post("/login/password")
def login_password():
    """Log in with username and password: the fallback that is always there."""
    form = PasswordLoginForm()
    if not form.validate_on_submit():
        return _login_page(first_error(form), 400)
    return _finish_login(password_attempt(form.username.data, form.password.data, request.remote_addr))


@bp.get("/protected")
@login_required
def protected():
    """Greet the logged-in user with their enrolled photo."""
    return render_template("protected.html", form=ActionForm(), photo_form=PhotoForm(),
                           has_photo=has_face_photo(g.user))


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
