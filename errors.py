"""Error pages: every failure is a page that says what to do, never a bare 500 for user input."""

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError

from forms import RegisterForm
from models import db


def too_large(e):
    """Refuse an oversized request before its body is read."""
    limit = request.max_content_length or 0
    error = f"That upload is too large - use a photo under {limit // (1024 * 1024)} MB"
    if request.endpoint == "auth.register":
        return render_template("register.html", form=RegisterForm(formdata=None), error=error), 413
    return render_template("error.html", error=error), 413


def csrf_failed(e):
    """Refuse a form without a valid CSRF token (stale page, or a forged request)."""
    error = "This page has expired - go back, reload it and try again"
    return render_template("error.html", error=error), 400


def database_unavailable(e):
    """Answer a locked or unreachable database with 503 and a clean session."""
    db.session.rollback()
    return render_template("error.html", error="The system is busy - please try again in a moment"), 503


def init_app(app):
    """Register the error handlers."""
    app.register_error_handler(413, too_large)
    app.register_error_handler(CSRFError, csrf_failed)
    app.register_error_handler(OperationalError, database_unavailable)
