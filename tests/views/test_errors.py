"""Error pages: every status renders in the site's layout, with a plain message and a way back."""

import pytest
from flask import abort

STATUSES = [400, 403, 404, 405, 413, 429, 500, 503]


@pytest.fixture
def failing(make_app):
    """An app with a route that answers each status, and one that raises an unexpected error."""
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    @app.get("/test/status/<int:code>")
    def status(code):
        abort(code)

    @app.get("/test/crash")
    def crash():
        raise RuntimeError("an unexpected failure")

    return app


@pytest.mark.parametrize("code", STATUSES)
def test_every_error_status_renders_in_the_layout(failing, code):
    response = failing.test_client().get(f"/test/status/{code}")
    page = response.get_data(as_text=True)
    assert response.status_code == code
    assert "<header>" in page and 'class="brand"' in page  # the site's layout
    assert 'role="alert"' in page and "Back to the start" in page


def test_an_unexpected_failure_is_a_500_page_not_a_traceback(failing):
    response = failing.test_client().get("/test/crash")
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.data and b"Traceback" not in response.data


def test_unknown_path_and_wrong_method_have_a_way_back(client):
    for response in (client.get("/no/such/page"), client.get("/logout")):
        assert response.status_code in (404, 405)
        assert b"Back to the start" in response.data and b"<header>" in response.data


def in_layout_with_a_way_back(response, status, back=None):
    """Check that `response` is a `status` page in the site's layout, whose main link goes to `back` (when given)."""
    page = response.get_data(as_text=True)
    assert response.status_code == status, page
    assert "<header>" in page and 'class="brand"' in page and 'role="alert"' in page
    assert back is None or f'<a class="button primary" href="{back}">' in page, page  # the page's first way out
    return page


def test_a_refused_form_post_goes_back_to_its_page(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)  # as in production
    client = app.test_client()
    page = in_layout_with_a_way_back(client.post("/register", data={"username": "grace"}), 400, "/register")
    assert "This page has expired" in page and "Back to registration" in page
    in_layout_with_a_way_back(client.post("/login/password"), 400, "/login")
    in_layout_with_a_way_back(client.post("/logout"), 400, "/protected")


def test_an_upload_over_the_limit_is_413_with_a_way_back(make_app, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    kiosk.app.config["MAX_CONTENT_LENGTH"] = 50_000
    with open(photos["grace"], "rb") as f:
        added = kiosk.client.post("/protected/faces", data={"photo": (f, "face.jpg")})
    page = in_layout_with_a_way_back(added, 413, "/protected")
    assert "use a photo under 48 kB" in page and "Back to your page" in page
    registered = kiosk.register("luis", photos["grace"])  # over 50 kB too
    assert "<h1>Register</h1>" in in_layout_with_a_way_back(registered, 413)  # the form again, with the message


def test_too_many_wrong_passwords_is_429_on_the_login_page(kiosk, photos):
    kiosk.app.config["PASSWORD_RATE_LIMIT"] = 1
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "wrong password")
    page = in_layout_with_a_way_back(kiosk.password_login("grace", "wrong password"), 429)
    assert "Too many attempts" in page and "<h1>Log in</h1>" in page


def test_busy_is_503_with_a_way_back(kiosk, photos):
    from facelogin.engine import limits

    kiosk.app.config.update(MAX_CONCURRENT_DECODES=1, DECODE_WAIT_SECONDS=0.1)
    with limits.Slots(1, 0).hold():  # the only slot for pictures is taken
        page = in_layout_with_a_way_back(kiosk.register("grace", photos["grace"]), 503, "/register")
    assert "The system is busy" in page


def test_an_unknown_kiosk_link_says_so_with_a_way_back(client):
    page = in_layout_with_a_way_back(client.get("/kiosks/enrol/used-up"), 404, "/")
    assert "This kiosk link is not valid" in page and "Back to the start" in page
