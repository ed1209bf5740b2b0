"""The kiosk in a real browser: Debian's Chromium, driven by Playwright, against a real server thread.

Pages open in a registered kiosk browser (the enrolment link of `flask kiosks add` was opened
in them) unless a test says otherwise. Screenshots go to test-artifacts/screenshots/. Without
Chromium or Playwright these tests are skipped, except under CI=true, where they fail.
"""

import os
import re
import secrets
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from werkzeug.serving import make_server

from app import create_app
from facelogin.services import sessions
from media import alter, load_bgr, on_canvas, still_clip, turn_clip, write_video
from models import User, db

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"  # the repository root's
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


def _unavailable():
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
        """Enrol a user directly, through the same registration code as the pages."""
        from facelogin.services.enrolment import register_user

        with self.app.app_context():
            register_user(username, password, photo)


@pytest.fixture(scope="module")
def site(tmp_path_factory, media):
    """Serve a fresh app (CSRF on, as in production) on a free port of 127.0.0.1."""
    d = tmp_path_factory.mktemp("site")
    defaults = {"CAMERA_MODE": "server", "CAMERA_SOURCE": media["grace_video"], "KIOSK_IDLE_SECONDS": 120}
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
    reason = _unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p.chromium


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


@pytest.fixture(scope="module")
def browser(chromium, photos, tmp_path_factory):
    """One headless Chromium for the module, whose fake camera shows Grace Hopper."""
    grace = load_bgr(photos["grace"])
    clip = [on_canvas(alter(grace, angle=2 * np.sin(i), quality=85)) for i in range(8)]
    browser = launch(chromium, write_y4m(tmp_path_factory.mktemp("camera") / "grace.y4m", clip))
    yield browser
    browser.close()


def register_kiosk(page, site):
    """Make the page's browser a registered kiosk: open a fresh enrolment link in it."""
    from playwright.sync_api import expect

    page.goto(site.kiosk_link())
    page.wait_for_url("**/login")
    expect(page.get_by_role("status").first).to_contain_text("is now the registered kiosk")


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


def shot(page, name):
    """Save a full-page screenshot as a test artifact."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def preview_shows_frames(page):
    """Wait until the live-preview <img> has decoded a frame of the kiosk camera."""
    page.wait_for_function("() => document.querySelector('img.camera').naturalWidth === 640")


def test_register_then_log_in_by_face_and_log_out(page, site, photos):
    from playwright.sync_api import expect

    site.configure(LIVENESS="off")  # about registering and recognition, not liveness: the camera clip is still
    page.goto("/")
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    shot(page, "home")
    page.get_by_role("link", name="Register").last.click()
    preview_shows_frames(page)
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_label("Photo of your face").set_input_files(photos["grace"])
    shot(page, "register")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Welcome, grace!")
    preview_shows_frames(page)
    shot(page, "login")

    page.get_by_role("button", name="Log in with my face").click()
    page.wait_for_url("**/protected")
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()
    expect(page.locator("[data-idle-countdown]")).to_have_text(re.compile(r"Logging out in 2:00|1:5\d"))
    shot(page, "protected")
    page.get_by_role("button", name="Log out").last.click()
    expect(page.get_by_role("status").first).to_have_text("You are logged out.")


def test_refused_face_shows_its_message(page, site, media, photos):
    from playwright.sync_api import expect

    site.configure(LIVENESS="off")  # about recognition, not liveness: Luis's clip is still
    site.register("grace", photos["grace"])
    site.app.config["CAMERA_SOURCE"] = media["luis_video"]
    page.goto("/login")
    preview_shows_frames(page)
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("alert")).to_contain_text("Face not recognised")
    preview_shows_frames(page)
    shot(page, "login-refused")


def test_preview_opens_a_new_view_when_the_server_ends_one(page, site):
    site.configure(STREAM_SECONDS=1)  # the server ends each live view after 1 s
    page.goto("/login")
    preview_shows_frames(page)
    for _ in range(2):  # kiosk.js asks for a new view each time, and it shows the camera again
        with page.expect_response(lambda r: "/camera/stream?view=" in r.url) as answer:
            pass
        assert answer.value.status == 200
        preview_shows_frames(page)


def test_browser_camera_registers_and_logs_in(page, site):
    from playwright.sync_api import expect

    site.configure(CAMERA_MODE="browser", LIVENESS="off")  # about the browser camera, not liveness
    page.goto("/register")
    expect(page.locator("img.camera")).to_have_count(0)  # no server camera in this mode
    page.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
    page.get_by_role("button", name="Take photo with the kiosk camera").click()
    page.wait_for_url("**/register/camera")
    page.wait_for_function("() => document.querySelector('img.camera').naturalWidth === 640")
    shot(page, "register-confirm")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("correct horse")
    page.get_by_role("button", name="Register with this photo").click()
    expect(page.get_by_role("status").first).to_contain_text("Welcome, grace!")
    page.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
    held = []  # hold the posted frames, so that the "looking" state can be seen
    page.route(
        re.compile(r".*/login$"),
        lambda route: held.append(route) if route.request.method == "POST" else route.fallback(),
    )
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("button", name="Looking…")).to_be_disabled()
    expect(page.locator("form.face-login")).to_have_attribute("aria-busy", "true")
    shot(page, "login-looking")
    while not held:
        page.wait_for_timeout(50)
    assert held[0].request.post_data_buffer.count(b'name="frame"') == site.app.config["CAMERA_FRAMES"]
    held[0].continue_()
    page.wait_for_url("**/protected")
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()


def test_admin_page_and_a_confirmed_action(page, site, photos):
    from playwright.sync_api import expect

    from facelogin.services import accounts as useradmin

    site.register("grace", photos["grace"])
    site.register("luis", photos["luis"])
    with site.app.app_context():
        useradmin.create_admin("boss", "s3cret pass")
        luis = User.by_username("luis")
        luis.face_failures, luis.face_disabled = 50, True  # face login switched off by failures
        db.session.commit()
    page.goto("/login")
    page.get_by_text("Log in with your password instead").click()
    page.get_by_label("Username", exact=True).fill("boss")
    page.get_by_label("Password", exact=True).fill("s3cret pass")
    page.get_by_role("button", name="Log in", exact=True).click()
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    page.wait_for_function("() => [...document.querySelectorAll('img.thumb')].every(i => i.naturalWidth > 0)")
    shot(page, "admin")
    expect(page.locator("tr", has_text="luis").locator(".tag")).to_have_text("locked")
    page.get_by_role("link", name="Re-enable luis").click()
    expect(page.get_by_role("heading", name="Re-enable luis?")).to_be_visible()
    page.get_by_role("button", name="Re-enable the account").click()
    expect(page.get_by_role("status").first).to_have_text("luis can log in again.")
    expect(page.locator("tr", has_text="luis").locator(".tag")).to_have_count(0)


def test_idle_countdown_returns_to_the_login_page(page, site, photos):
    from playwright.sync_api import expect

    site.register("grace", photos["grace"])
    site.app.config["KIOSK_IDLE_SECONDS"] = 2
    page.goto("/login")
    page.get_by_text("Log in with your password instead").click()
    page.get_by_label("Username", exact=True).fill("grace")
    page.get_by_label("Password", exact=True).fill("correct horse")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("[data-idle-countdown]")).to_contain_text("Logging out in 0:0")
    page.wait_for_url("**/login", timeout=8000)
    expect(page.get_by_role("link", name="Log in")).to_be_visible()  # the server ended the session too


@pytest.fixture(scope="module")
def blinking_browser(chromium, photos, tmp_path_factory):
    """A second Chromium whose fake camera shows Grace Hopper blinking every two seconds."""
    from media import close_eyes

    grace = on_canvas(load_bgr(photos["grace"]))
    shut = close_eyes(grace)
    # 15 fps: open 0.8 s, eyes shut 4 frames (267 ms, a slow blink), open 1.2 s; Chromium loops it.
    clip = [alter(shut if 12 <= i < 16 else grace, angle=2 * np.sin(i), quality=85) for i in range(30)]
    browser = launch(chromium, write_y4m(tmp_path_factory.mktemp("blink") / "blink.y4m", clip, fps=15))
    yield browser
    browser.close()


def test_browser_camera_with_blink_liveness(blinking_browser, page, open_page, site, photos):
    from playwright.sync_api import expect

    site.configure(CAMERA_MODE="browser", LIVENESS="blink")
    site.register("grace", photos["grace"])
    # The still picture of the module's usual camera: refused, it never blinks.
    page.goto("/login")
    page.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("alert")).to_contain_text("Please blink", timeout=30_000)
    # A camera that shows her blinking logs her in.
    blinking = open_page(blinking_browser)
    blinking.goto("/login")
    blinking.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
    blinking.get_by_role("button", name="Log in with my face").click()
    blinking.wait_for_url("**/protected", timeout=30_000)


# --- challenge liveness (the default) and the kiosk device credential ---------------------------

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


@pytest.fixture(scope="module")
def grace_canvas(photos):
    """Grace Hopper's photo on a camera-sized frame."""
    return on_canvas(load_bgr(photos["grace"]))


def test_server_camera_challenge_logs_in(page, site, photos, grace_canvas, tmp_path):
    from playwright.sync_api import expect

    site.register("grace", photos["grace"])
    page.goto("/login")
    preview_shows_frames(page)
    challenge = shown_challenge(page)
    assert challenge in MOVEMENTS
    text = page.locator("[data-challenge] .challenge-text")
    expect(text).to_be_visible()
    expect(text).to_have_text(MOVEMENTS[challenge], ignore_case=True)
    expect(page.get_by_role("status").last).to_contain_text(f"then {MOVEMENTS[challenge]} and back")
    size = page.locator("[data-challenge]").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 32, f"the challenge is {size}px: too small to read from a step back"
    shot(page, "login-challenge")
    # The server camera now shows Grace making that very movement (from the first frame of the clip).
    site.app.config["CAMERA_SOURCE"] = write_video(
        tmp_path / f"turn-{challenge}.avi", turn_clip(grace_canvas, challenge)
    )
    page.get_by_role("button", name="Log in with my face").click()
    page.wait_for_url("**/protected")
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()


def test_server_camera_still_photo_is_told_the_movement(page, site, photos, grace_canvas, tmp_path):
    from playwright.sync_api import expect

    site.configure(CHALLENGE_SECONDS=2.0)  # the server camera watches a still photo for 2 s, not 4
    site.register("grace", photos["grace"])
    site.app.config["CAMERA_SOURCE"] = write_video(tmp_path / "still.avi", still_clip(grace_canvas))
    page.goto("/login")
    challenge, nonce = shown_challenge(page), page.locator("input[name=nonce]").input_value()
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("alert")).to_contain_text(f"{CHALLENGE_ALERT} {MOVEMENTS[challenge]} and back")
    page.wait_for_url("**/login")
    # The attempt used its challenge up: the answer carries a new one, and the nonce that goes with it.
    challenge = shown_challenge(page)
    assert challenge in MOVEMENTS
    expect(page.locator("[data-challenge] .challenge-text")).to_be_visible()
    expect(page.locator("input[name=nonce]")).not_to_have_value(nonce)
    shot(page, "login-challenge-refused")
    # So pressing the button again is a new attempt at the new challenge, not an expired page.
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("alert")).to_contain_text(f"{CHALLENGE_ALERT} {MOVEMENTS[challenge]} and back")


def looping_turn(bgr, direction, fps=15):
    """A clip Chromium's fake camera loops: 1.2 s looking straight, the movement, a quick way back.

    Wherever a ~4 s capture window starts in the 2.2 s loop, it holds a steady frontal start
    followed by the whole movement; the way back is quick so that no steady start forms half-turned.
    """
    return turn_clip(bgr, direction, degrees=22, hold=round(1.2 * fps), turn=7, peak=4, back=4)


@pytest.fixture(scope="module")
def turning_browser(chromium, grace_canvas, tmp_path_factory):
    """A Chromium whose fake camera shows Grace Hopper turning her head to her left, over and over."""
    clip = write_y4m(tmp_path_factory.mktemp("turn") / "left.y4m", looping_turn(grace_canvas, "left"), fps=15)
    browser = launch(chromium, clip)
    yield browser
    browser.close()


def draw_challenge(page, want, tries=40):
    """Reload the login page with a fresh session (the challenge is bound to it) until it asks for `want`."""
    for _ in range(tries):
        page.goto("/login")
        if shown_challenge(page) == want:
            return
        page.context.clear_cookies(name="session")  # keeps the kiosk_device credential
    pytest.fail(f"no {want!r} challenge in {tries} fresh sessions")


def test_browser_camera_challenge_logs_in(turning_browser, open_page, site, photos):
    from playwright.sync_api import expect

    site.reset(CAMERA_MODE="browser")  # LIVENESS=challenge, the default
    site.register("grace", photos["grace"])
    page = open_page(turning_browser)
    draw_challenge(page, "left")
    form = page.locator("form.face-login")
    # min(CHALLENGE_FRAMES, CHALLENGE_SECONDS * 15) frames, 66 ms apart: a ~4 s window of the 2.2 s loop.
    assert int(form.get_attribute("data-frames")) * int(form.get_attribute("data-gap")) >= 3500
    page.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("status").last).to_contain_text(f"Now {MOVEMENTS['left']}, then back")
    page.wait_for_url("**/protected", timeout=30_000)
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()


def test_browser_camera_wrong_movement_gets_a_new_challenge(turning_browser, open_page, site, photos):
    from playwright.sync_api import expect

    site.reset(CAMERA_MODE="browser")
    site.register("grace", photos["grace"])
    page = open_page(turning_browser)
    draw_challenge(page, "right")  # the camera only ever turns left
    nonce = page.locator("input[name=nonce]").input_value()
    page.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("alert")).to_contain_text(CHALLENGE_ALERT, timeout=30_000)
    expect(page.get_by_role("alert")).to_contain_text(f"{MOVEMENTS['right']} and back")
    # The answer's new challenge and nonce replace the used ones, without a reload.
    assert shown_challenge(page) in MOVEMENTS
    expect(page.locator("input[name=nonce]")).not_to_have_value(nonce)
    expect(page.get_by_role("button", name="Log in with my face")).to_be_enabled()
    assert page.url.endswith("/login")


@pytest.mark.parametrize("camera_mode", ["server", "browser"])
def test_face_login_needs_a_registered_kiosk(open_page, site, photos, camera_mode):
    from playwright.sync_api import expect

    # CHALLENGE_SECONDS=1: the browser posts a short burst, as the answer is refused before any face is read.
    site.reset(CAMERA_MODE=camera_mode, CHALLENGE_SECONDS=1.0)
    site.register("grace", photos["grace"])
    page = open_page(kiosk=False)  # this browser never opened an enrolment link
    page.goto("/login")
    expect(page.get_by_role("note")).to_contain_text("Face login works only on a registered kiosk")
    expect(page.locator("img.camera")).to_have_count(0)  # no camera view for a stranger's browser
    if camera_mode == "browser":
        page.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
    shot(page, f"login-unregistered-{camera_mode}")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in with my face").click()
    assert answer.value.status == 403
    expect(page.get_by_role("alert")).to_contain_text("registered kiosk")
    assert site.app.test_client().get("/camera/stream").status_code == 403
    # The password always works, on any device.
    page.get_by_text("Log in with your password instead").click()
    page.get_by_label("Username", exact=True).fill("grace")
    page.get_by_label("Password", exact=True).fill("correct horse")
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url("**/protected")
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()


def test_an_administrators_face_is_refused_with_the_password_form_open(page, site, photos):
    from playwright.sync_api import expect

    site.configure(LIVENESS="off")  # about the admin rule, not liveness: the camera clip is still
    site.register("grace", photos["grace"])
    with site.app.app_context():
        User.by_username("grace").is_admin = True
        db.session.commit()
    page.goto("/login")
    expect(page.locator("details.fallback")).not_to_have_attribute("open", "")
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("alert")).to_contain_text("Administrators log in with their password")
    expect(page.locator("details.fallback")).to_have_attribute("open", "")
    page.get_by_label("Username", exact=True).fill("grace")
    page.get_by_label("Password", exact=True).fill("correct horse")
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url("**/protected")
    expect(page.get_by_role("link", name="Admin")).to_be_visible()


# --- registration and face photos with the kiosk camera (issue 13) ------------------------------


def test_server_camera_registration_refuses_a_bad_picture_at_once(page, site, photos, tmp_path):
    from playwright.sync_api import expect

    from media import scene, two_people

    grace, luis = load_bgr(photos["grace"]), load_bgr(photos["luis"])
    cameras = {
        "We found 2 faces": write_video(tmp_path / "two.avi", [two_people(grace, luis)] * 6),
        "We could not find a face": write_video(tmp_path / "empty.avi", [scene(i) for i in range(6)]),
    }
    page.goto("/register")
    for message, clip in cameras.items():
        site.app.config["CAMERA_SOURCE"] = clip
        page.get_by_role("button", name="Take photo with the kiosk camera").click()
        expect(page.get_by_role("alert")).to_contain_text(message)
        # Still the register page (the answer to the POST): no confirmation page, no name asked for this picture.
        expect(page.get_by_role("heading", name="Register", exact=True)).to_be_visible()
        assert "/register/camera" not in page.url
    shot(page, "register-refused")
    site.app.config["CAMERA_SOURCE"] = site.defaults["CAMERA_SOURCE"]  # Grace alone: a good picture
    page.get_by_role("button", name="Take photo with the kiosk camera").click()
    page.wait_for_url("**/register/camera")
    expect(page.get_by_role("button", name="Register with this photo")).to_be_visible()


@pytest.fixture(scope="module")
def crowded_browser(chromium, photos, tmp_path_factory):
    """A Chromium whose fake camera shows two people side by side."""
    from media import two_people

    frame = two_people(load_bgr(photos["grace"]), load_bgr(photos["luis"]))
    browser = launch(chromium, write_y4m(tmp_path_factory.mktemp("crowd") / "two.y4m", [frame] * 4))
    yield browser
    browser.close()


def test_browser_camera_registration_refuses_two_faces_at_once(crowded_browser, site, open_page):
    from playwright.sync_api import expect

    site.reset(CAMERA_MODE="browser")
    page = open_page(crowded_browser)
    page.goto("/register")
    page.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
    page.get_by_role("button", name="Take photo with the kiosk camera").click()
    status = page.locator("form[data-capture-form] [data-status]")
    expect(status).to_contain_text("We found 2 faces")
    expect(status).to_have_attribute("role", "alert")
    assert page.url.endswith("/register")


def test_face_photos_show_thumbnails_and_a_camera_photo_is_confirmed_first(page, site, photos):
    from playwright.sync_api import expect

    site.register("grace", photos["grace"])
    page.goto("/login")
    page.get_by_text("Log in with your password instead").click()
    page.get_by_label("Username", exact=True).fill("grace")
    page.get_by_label("Password", exact=True).fill("correct horse")
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url("**/protected")
    thumbs = page.locator(".template-list img.thumb")
    expect(thumbs).to_have_count(1)
    page.get_by_role("button", name="Take another photo with the kiosk camera").click()
    page.wait_for_url("**/protected/faces/camera")
    page.wait_for_function("() => document.querySelector('img.camera').naturalWidth > 0")
    page.get_by_role("button", name="Add this photo").click()
    page.wait_for_url("**/protected")
    expect(page.get_by_role("status").first).to_contain_text("Photo added")
    expect(thumbs).to_have_count(2)
    page.wait_for_function("() => [...document.querySelectorAll('img.thumb')].every(i => i.naturalWidth > 0)")
    shot(page, "protected-photos")
