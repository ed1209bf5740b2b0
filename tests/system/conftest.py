"""Fixtures of the tests in a real browser: the served site, Debian's Chromium, kiosk pages (see tests/browsing.py)."""

import os
import threading

import numpy as np
import pytest
from browsing import Site, launch, looping_turn, register_kiosk, unavailable, write_y4m
from werkzeug.serving import make_server

from app import create_app
from media import alter, load_bgr, on_canvas


@pytest.fixture(scope="module")
def site(tmp_path_factory, media):
    """Serve a fresh app (CSRF on, as in production) on a free port of 127.0.0.1."""
    d = tmp_path_factory.mktemp("site")
    # Hands-free off: these tests press the button; tests/system/test_kiosk_screen.py never does.
    defaults = {
        "CAMERA_MODE": "server",
        "CAMERA_SOURCE": media["grace_video"],
        "KIOSK_IDLE_SECONDS": 120,
        "KIOSK_HANDS_FREE": False,
    }
    app = create_app(
        {
            "SECRET_KEY": "browser-test",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{d / 'site.sqlite'}",
            "UPLOAD_FOLDER": str(d / "uploads"),
            "KNOWN_FACES_FOLDER": str(d / "known_faces"),
            "CAMERA_TIMEOUT": 10.0,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
            **defaults,
        }
    )
    app.instance_path = str(d / "instance")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    site = Site(app, f"http://127.0.0.1:{server.server_port}")
    site.defaults = dict(app.config)  # every setting as started: no test's change leaks into the next
    yield site
    server.shutdown()
    thread.join(10)


@pytest.fixture(scope="module")
def chromium():
    """Playwright's handle on Debian's Chromium (skipped, or failed under CI, when it is missing)."""
    reason = unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p.chromium


@pytest.fixture(scope="module")
def browser(chromium, photos, tmp_path_factory):
    """One headless Chromium for the module, whose fake camera shows Grace Hopper."""
    grace = load_bgr(photos["grace"])
    clip = [on_canvas(alter(grace, angle=2 * np.sin(i), quality=85)) for i in range(8)]
    browser = launch(chromium, write_y4m(tmp_path_factory.mktemp("camera") / "grace.y4m", clip))
    yield browser
    browser.close()


@pytest.fixture
def open_page(browser, site):
    """Return a function opening a fresh page (new context, no cookies) in `in_browser` (default: the
    module's Chromium), registered as a kiosk unless kiosk=False; at the end every page must have
    had no script errors and no CSP refusals."""
    contexts, problems = [], []

    def open_page(in_browser=None, kiosk=True):
        context = (in_browser or browser).new_context(viewport={"width": 1280, "height": 800}, base_url=site.url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None,
        )
        if kiosk:
            register_kiosk(page, site)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert problems == []


@pytest.fixture
def page(site, open_page):
    """A fresh page on an emptied site, in a browser registered as a kiosk."""
    site.reset()
    return open_page()


@pytest.fixture(scope="module")
def grace_canvas(photos):
    """Grace Hopper's photo on a camera-sized frame."""
    return on_canvas(load_bgr(photos["grace"]))


@pytest.fixture(scope="module")
def turning_browser(chromium, grace_canvas, tmp_path_factory):
    """A Chromium whose fake camera shows Grace Hopper turning her head to her left, over and over."""
    clip = write_y4m(tmp_path_factory.mktemp("turn") / "left.y4m", looping_turn(grace_canvas, "left"), fps=15)
    browser = launch(chromium, clip)
    yield browser
    browser.close()
