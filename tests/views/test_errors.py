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
