"""The kiosk as a screen, in Chromium: hands-free face login in both camera modes, and the full-screen layout.

These tests never click the face-login button: the page starts the login by itself when one face
holds still in the guide oval. The fixtures (a served site, Debian's Chromium) are test_browser's.
"""

import time

import pytest
from accessibility import audit
from browsing import MOVEMENTS, SHOTS, draw_challenge, launch, shot, write_y4m

from media import alter, load_bgr, on_canvas, scene, write_video
from models import LoginAttempt, User, db

MINUTE = 60


@pytest.fixture(scope="module")
def stranger_browser(chromium, photos, tmp_path_factory):
    """A Chromium whose fake camera shows Luis Pedro Coelho, who is not registered."""
    luis = load_bgr(photos["luis"])
    clip = [on_canvas(alter(luis, angle=2 * (i % 3 - 1), quality=85)) for i in range(8)]
    browser = launch(chromium, write_y4m(tmp_path_factory.mktemp("stranger") / "luis.y4m", clip))
    yield browser
    browser.close()


def hands_free(site, photos, **config):
    """Set the site up for hands-free login with Grace registered (liveness off: this is about starting by itself)."""
    site.configure(KIOSK_HANDS_FREE=True, LIVENESS="off", **config)
    site.register("grace", photos["grace"])


def face_posts(page):
    """Record the status of every face-login POST the page makes, in a list that grows as they answer."""
    answers = []
    page.on(
        "response",
        lambda r: (
            answers.append(r.status) if r.request.method == "POST" and r.url.split("?")[0].endswith("/login") else None
        ),
    )
    return answers


def attempts(site):
    """Return the outcomes of the face-login attempts recorded so far."""
    with site.app.app_context():
        return [a.outcome for a in db.session.execute(db.select(LoginAttempt)).scalars() if a.mode != "password"]


def watch_a_stranger_for_a_minute(page, site):
    """Keep the login page open on a stranger's face for a minute; return the answers to its face-login POSTs."""
    from playwright.sync_api import expect

    answers = face_posts(page)
    page.goto("/login")
    expect(page.get_by_role("alert")).to_contain_text("not recognised", timeout=20_000)
    # While it waits, the refusal stays on its own: no hint beside it says the face is fine.
    for _ in range(4):
        expect(page.locator("[data-stage] [data-status]")).to_contain_text("not recognised")
        page.wait_for_timeout(400)
    shot(page, "login-hands-free-refused")
    ends = time.monotonic() + MINUTE
    while time.monotonic() < ends:
        page.wait_for_timeout(1000)
    return answers


def assert_not_hammered(site, answers):
    """The stranger was tried more than once, and never ran into the per-address or per-account limits."""
    cfg = site.app.config
    assert 2 <= len(answers) <= cfg["FACE_RATE_LIMIT"] // 2, answers  # 4 s, 8 s, 16 s, 30 s apart
    assert 429 not in answers and all(400 <= status < 500 for status in answers), answers
    outcomes = attempts(site)
    assert len(outcomes) == len(answers) and set(outcomes) == {"failure"}, outcomes
    with site.app.app_context():
        grace = User.by_username("grace")
        assert grace.face_failures == 0 and grace.face_locked_until is None  # no account was claimed


def test_server_camera_logs_an_enrolled_face_in_without_a_click(page, site, photos):
    from playwright.sync_api import expect

    hands_free(site, photos)
    answers = face_posts(page)
    page.goto("/login")
    page.wait_for_url("**/protected", timeout=30_000)
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()
    assert answers == [302]  # one attempt, and it logged her in


def test_server_camera_keeps_refusing_a_stranger_without_hammering(page, site, photos, media):
    hands_free(site, photos, CAMERA_SOURCE=media["luis_video"])
    assert_not_hammered(site, watch_a_stranger_for_a_minute(page, site))


def test_a_stranger_who_leaves_makes_way_for_the_next_person_at_once(page, site, photos, media, tmp_path):
    from playwright.sync_api import expect

    hands_free(site, photos, CAMERA_SOURCE=media["luis_video"])
    answers = face_posts(page)
    page.goto("/login")
    expect(page.get_by_role("alert")).to_contain_text("not recognised", timeout=20_000)
    for _ in range(2):  # two refusals in a row: the next try would wait 8 s with the stranger still there
        count = len(answers)
        while len(answers) == count:
            page.wait_for_timeout(200)
    # He walks away; the room is empty for 2 s; Grace steps up.
    site.app.config["CAMERA_SOURCE"] = write_video(tmp_path / "empty.avi", [scene(i) for i in range(6)])
    page.wait_for_timeout(2000)
    site.app.config["CAMERA_SOURCE"] = media["grace_video"]
    left = time.monotonic()
    page.wait_for_url("**/protected", timeout=30_000)
    assert time.monotonic() - left < 6, "the next person waited out the stranger's pause"
    assert answers[-1] == 302 and answers.count(302) == 1 and len(answers) == 4, answers


def test_browser_camera_logs_an_enrolled_face_in_without_a_click(page, site, photos):
    from playwright.sync_api import expect

    hands_free(site, photos, CAMERA_MODE="browser")
    answers = face_posts(page)
    page.goto("/login")
    page.wait_for_url("**/protected", timeout=30_000)
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()
    assert answers == [302]  # the page posted its frames once, and followed the redirect to /protected


def test_browser_camera_keeps_refusing_a_stranger_without_hammering(stranger_browser, open_page, site, photos):
    site.reset()
    hands_free(site, photos, CAMERA_MODE="browser")
    page = open_page(stranger_browser)
    assert_not_hammered(site, watch_a_stranger_for_a_minute(page, site))


def test_with_challenge_liveness_the_movement_is_shown_first(turning_browser, open_page, site, photos):
    from playwright.sync_api import expect

    site.reset(CAMERA_MODE="browser", KIOSK_HANDS_FREE=False)  # LIVENESS=challenge, the default
    site.register("grace", photos["grace"])
    page = open_page(turning_browser)  # Grace looks straight at it, then turns to her left, over and over
    draw_challenge(page, "left")  # the challenge belongs to the session: a reload keeps it
    site.configure(CAMERA_MODE="browser", KIOSK_HANDS_FREE=True)
    answers = face_posts(page)
    page.reload()
    status = page.locator("[data-stage] [data-status]")
    expect(status).to_contain_text(f"{MOVEMENTS['left']}, then back", ignore_case=True)
    page.wait_for_url("**/protected", timeout=30_000)
    assert answers == [302]


@pytest.mark.parametrize(("orientation", "width", "height"), [("portrait", 1080, 1920), ("landscape", 1920, 1080)])
def test_the_login_page_fills_the_screen(page, site, orientation, width, height):
    from playwright.sync_api import expect

    site.configure(KIOSK_HANDS_FREE=False)  # the screen as a person sees it walking up: nothing starts
    page.set_viewport_size({"width": width, "height": height})
    page.goto("/login")
    box = page.locator("[data-face-box]")
    expect(box).to_have_attribute("visibility", "visible")  # the face box is drawn over the picture
    page.wait_for_function("() => document.querySelector('img.camera').naturalWidth === 640")
    stage = page.locator("[data-stage]").bounding_box()
    if orientation == "portrait":
        assert stage["width"] >= 0.95 * width and stage["height"] >= 0.6 * height, stage
    else:
        assert stage["width"] >= 0.6 * width and stage["height"] >= 0.85 * height, stage
    # The oval, the challenge and the status line lie over the picture, all inside it.
    for part in ("svg .oval", "[data-challenge]", "[data-status]"):
        inner = page.locator(f"[data-stage] {part}").bounding_box()
        assert stage["x"] <= inner["x"] and inner["x"] + inner["width"] <= stage["x"] + stage["width"] + 1, part
        assert stage["y"] <= inner["y"] and inner["y"] + inner["height"] <= stage["y"] + stage["height"] + 1, part
    status_px = page.locator("[data-stage] [data-status]").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert status_px >= 32, f"the status line is {status_px}px: too small to read from a metre"
    # The face box sits in the oval, where the camera sees Grace's face.
    face, oval = box.bounding_box(), page.locator("[data-stage] svg .oval").bounding_box()
    centre = (face["x"] + face["width"] / 2, face["y"] + face["height"] / 2)
    assert oval["x"] < centre[0] < oval["x"] + oval["width"] and oval["y"] < centre[1] < oval["y"] + oval["height"]
    button = page.get_by_role("button", name="Log in with my face").bounding_box()
    assert button["y"] + button["height"] <= height, "the button is below the screen"
    page.screenshot(path=str(SHOTS / f"login-{orientation}.png"))
    audit(page, f"login-{orientation}")
