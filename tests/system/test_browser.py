"""The kiosk in a real browser: Debian's Chromium, driven by Playwright, against a real server thread.

The fixtures (site, chromium, browser, open_page, page) are in tests/system/conftest.py.
"""

import re

import numpy as np
import pytest
from browsing import (
    CHALLENGE_ALERT,
    MOVEMENTS,
    draw_challenge,
    launch,
    password_login,
    preview_shows_frames,
    shot,
    shown_challenge,
    write_y4m,
)

from media import alter, load_bgr, on_canvas, still_clip, turn_clip, write_video
from models import User, db


def test_register_then_log_in_by_face_and_log_out(page, site, photos):
    from playwright.sync_api import expect

    site.configure(LIVENESS="off")  # about registering and recognition, not liveness: the camera clip is still
    page.goto("/")
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    shot(page, "home")
    page.get_by_role("link", name="Register").last.click()
    preview_shows_frames(page)
    form = page.locator("form", has=page.get_by_label("Photo of your face"))
    form.get_by_label("Username").fill("grace")
    form.get_by_label("Password").fill("correct horse")
    form.get_by_label("Photo of your face").set_input_files(photos["grace"])
    form.get_by_label("I agree").check()
    shot(page, "register")
    form.get_by_role("button", name="Register", exact=True).click()
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
    page.locator("#capture-consent").check()
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
    password_login(page, "boss", "s3cret pass")
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
    password_login(page, "grace")
    expect(page.get_by_role("timer")).to_contain_text("Logging out in 0:0")
    expect(page.locator("[data-idle-warning]")).to_have_text(re.compile(r"You will be logged out in [12] seconds?\."))
    page.wait_for_url("**/login", timeout=8000)
    expect(page.get_by_role("link", name="Log in")).to_be_visible()  # the server ended the session too
    expect(page.get_by_role("status").first).to_have_text(
        "You were logged out after 2 seconds without activity - please log in again."
    )


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
        page.locator("#capture-consent").check()  # each refusal is a new page, with the box unticked
        page.get_by_role("button", name="Take photo with the kiosk camera").click()
        expect(page.get_by_role("alert")).to_contain_text(message)
        # Still the register page (the answer to the POST): no confirmation page, no name asked for this picture.
        expect(page.get_by_role("heading", name="Register", exact=True)).to_be_visible()
        assert "/register/camera" not in page.url
    shot(page, "register-refused")
    site.app.config["CAMERA_SOURCE"] = site.defaults["CAMERA_SOURCE"]  # Grace alone: a good picture
    page.locator("#capture-consent").check()
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
    page.locator("#capture-consent").check()
    page.get_by_role("button", name="Take photo with the kiosk camera").click()
    status = page.locator("[data-stage] [data-status]")  # the status line over the camera view
    expect(status).to_contain_text("We found 2 faces")
    expect(status).to_have_attribute("role", "alert")
    assert page.url.endswith("/register")


def test_face_photos_show_thumbnails_and_a_camera_photo_is_confirmed_first(page, site, photos):
    from playwright.sync_api import expect

    site.register("grace", photos["grace"])
    password_login(page, "grace")
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
