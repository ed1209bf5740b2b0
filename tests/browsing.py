"""Helpers of the tests in a real browser: the served site, Debian's Chromium with a fake camera, screenshots.

The fixtures that use them are in tests/system/conftest.py. Pages open in a registered kiosk browser
(the enrolment link of `flask kiosks add` was opened in them) unless a test says otherwise.
Screenshots go to test-artifacts/screenshots/. Without Chromium or Playwright the browser tests
are skipped, except under CI=true, where they fail.
"""

import os
import secrets
import shutil
from pathlib import Path

import cv2
import pytest

from facelogin.services import sessions
from media import turn_clip
from models import db

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"  # the repository root's
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def write_y4m(path, frames, fps=15):
    """Write BGR frames as an uncompressed YUV4MPEG2 (I420) clip, Chromium's fake-camera format."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return str(path)


def unavailable():
    """Return why the browser tests cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium (as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: `make install-dev` installs it"
    return None


class Site:
    """The app served on 127.0.0.1 by a werkzeug server thread."""

    def __init__(self, app, url):
        self.app, self.url = app, url

    def reset(self, **config):
        """Empty the database and the folders, and set the kiosk's config for one test."""
        with self.app.app_context():
            db.drop_all()
            db.create_all()
        for key in ("UPLOAD_FOLDER", "KNOWN_FACES_FOLDER"):
            shutil.rmtree(self.app.config[key], ignore_errors=True)
            os.makedirs(self.app.config[key])
        self.configure(**config)

    def configure(self, **config):
        """Set the kiosk's config for one test: every setting as the site started, then `config` (the data stay)."""
        self.app.config.update(self.defaults, **config)

    def kiosk_link(self, name=None):
        """Return a one-time enrolment path, as `flask kiosks add NAME` prints it."""
        with self.app.app_context():
            return f"/kiosks/enrol/{sessions.add_device(name or f'kiosk-{secrets.token_hex(4)}')}"

    def register(self, username, photo, password="correct horse"):
        """Enrol a user directly, through the same registration code as the pages (with their consent)."""
        from facelogin.services import consent
        from facelogin.services.enrolment import register_user

        with self.app.app_context():
            register_user(username, password, photo, agreed=consent.given("y"))


def launch(chromium, camera_clip):
    """Start a headless Chromium whose fake camera plays `camera_clip` (a .y4m file), in a new profile."""
    # launch() gives the browser a new temporary user-data dir of its own.
    return chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=ARGS
        + [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_clip}",
        ],
    )


def register_kiosk(page, site):
    """Make the page's browser a registered kiosk: open a fresh enrolment link in it."""
    from playwright.sync_api import expect

    page.goto(site.kiosk_link())
    page.wait_for_url("**/login")
    expect(page.get_by_role("status").first).to_contain_text("is now the registered kiosk")


def shot(page, name):
    """Save a full-page screenshot as a test artifact."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def preview_shows_frames(page):
    """Wait until the live-preview <img> has decoded a frame of the kiosk camera."""
    page.wait_for_function("() => document.querySelector('img.camera').naturalWidth === 640")


CHALLENGE_ALERT = "Please look straight at the camera, then"
MOVEMENTS = {
    "left": "turn your head to your left",
    "right": "turn your head to your right",
    "up": "tilt your head up",
    "down": "tilt your head down",
}


def shown_challenge(page):
    """Return the head movement the login page asks for (its data-challenge)."""
    return page.locator("[data-challenge]").get_attribute("data-challenge")


def looping_turn(bgr, direction, fps=15):
    """A clip Chromium's fake camera loops: 1.2 s looking straight, the movement, a quick way back.

    Wherever a ~4 s capture window starts in the 2.2 s loop, it holds a steady frontal start
    followed by the whole movement; the way back is quick so that no steady start forms half-turned.
    """
    return turn_clip(bgr, direction, degrees=22, hold=round(1.2 * fps), turn=7, peak=4, back=4)


def draw_challenge(page, want, tries=40):
    """Reload the login page with a fresh session (the challenge is bound to it) until it asks for `want`."""
    for _ in range(tries):
        page.goto("/login")
        if shown_challenge(page) == want:
            return
        page.context.clear_cookies(name="session")  # keeps the kiosk_device credential
    pytest.fail(f"no {want!r} challenge in {tries} fresh sessions")


def password_login(page, username, password="correct horse"):
    """Open the login page and log in with the password fallback."""
    page.goto("/login")
    page.get_by_text("Log in with your password instead").click()
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
