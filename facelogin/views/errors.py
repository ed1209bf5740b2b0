"""Error pages: every failure renders in the site's layout with a plain message and a way back."""

from flask import Blueprint, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from facelogin.engine import limits
from facelogin.forms import RegisterForm
from models import db

bp = Blueprint("errors", __name__)

MESSAGES = {
    400: "That request could not be understood - go back and try again",
    403: "You are not allowed to open this page",
    404: "There is no such page here",
    405: "That page cannot be used this way - start again from the home page",
    413: "That upload is too large",
    429: "Too many attempts - please wait a moment and try again",
    500: "Something went wrong on our side - please try again, or ask staff",
    503: "The system is busy - please try again in a moment",
}
TITLES = {404: "Page not found", 403: "Not allowed", 429: "Please wait", 503: "Busy"}
# A refused form post goes back to the page its form is on: the area's page (the Referer is never
# sent, Referrer-Policy: no-referrer). Log out is on the person's own page.
BACK = {
    "login.logout": ("account.protected", "Back to your page"),
    "account": ("account.protected", "Back to your page"),
    "register": ("register.register", "Back to registration"),
    "login": ("login.login", "Back to the login page"),
    "admin": ("admin.index", "Back to administration"),
}


def way_back():
    """Return (url, label) of the page a refused form post came from, or None (a GET: the start page will do)."""
    if request.method == "GET":
        return None
    found = BACK.get(request.endpoint) or BACK.get(request.blueprint)
    return (url_for(found[0]), found[1]) if found else None


def error_page(message, status):
    """Render the error page with `message` and `status`, and a way back."""
    title = TITLES.get(status, "Something went wrong")
    return render_template("error.html", error=message, title=title, back=way_back()), status


@bp.app_errorhandler(HTTPException)
def http_error(e):
    """Answer an HTTP error with the error page (the view's own message if it gave one)."""
    status = e.code or 500
    own = e.description if e.description != type(e).description else None
    return error_page(own or MESSAGES.get(status, e.name), status)


@bp.app_errorhandler(413)
def too_large(e):
    """Refuse an oversized request before its body is read."""
    limit = request.max_content_length or 0
    size = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit // 2**10} kB"  # never "under 0 MB"
    error = f"That upload is too large - use a photo under {size}"
    if request.endpoint == "register.register":
        return render_template("register.html", form=RegisterForm(formdata=None), error=error), 413
    return error_page(error, 413)


@bp.app_errorhandler(CSRFError)
def csrf_failed(e):
    """Refuse a form without a valid CSRF token (stale page, or a forged request)."""
    return error_page("This page has expired - go back, reload it and try again", 400)


@bp.app_errorhandler(limits.Busy)
def busy(e):
    """Answer a picture that found every decoding slot taken: 503, and the thread is free again at once."""
    return error_page(str(e), 503)


@bp.app_errorhandler(OperationalError)
def database_unavailable(e):
    """Answer a locked or unreachable database with 503 and a clean session."""
    db.session.rollback()
    return error_page(MESSAGES[503], 503)


@bp.app_errorhandler(500)
def server_error(e):
    """Answer an unexpected failure with the error page instead of a bare 500."""
    db.session.rollback()
    return error_page(MESSAGES[500], 500)
