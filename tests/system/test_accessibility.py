"""Every page a person or an administrator can see, audited with axe-core in Debian's Chromium.

The pages are reached as a person reaches them (clicks and form posts), in the states that
change what they show: refusals, errors, open fallbacks, lists with rows. `audit` fails on any
serious or critical violation and names the rule, the page and the node.
"""

import pytest
from accessibility import audit
from browsing import SHOTS, password_login, preview_shows_frames

from facelogin.engine import limits
from facelogin.services import accounts
from facelogin.services.enrolment import EnrollError
from models import LearnedTemplate, LoginAttempt, User, db


def fill_registration(page, photo, username="grace"):
    """Fill in the registration form with a photo file of the page, tick its consent box and send it."""
    form = page.locator("form", has=page.get_by_label("Photo of your face"))
    form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill("correct horse")
    form.get_by_label("Photo of your face").set_input_files(photo)
    form.get_by_label("I agree").check()
    form.get_by_role("button", name="Register", exact=True).click()


def test_the_visitors_pages(page, site, media, photos):
    from playwright.sync_api import expect

    site.configure(LIVENESS="off", PASSWORD_RATE_LIMIT=2)  # a still clip; the third wrong password is a 429
    site.register("grace", photos["grace"])
    page.goto(site.kiosk_link())  # the kiosk's enrolment link: the login page says it worked
    expect(page.get_by_role("status").first).to_contain_text("is now the registered kiosk")
    audit(page, "kiosk-enrolled")
    page.goto("/")
    audit(page, "home")
    page.goto("/login")
    preview_shows_frames(page)
    audit(page, "login")
    page.get_by_text("Log in with your password instead").click()
    audit(page, "login-password-open")
    site.app.config["CAMERA_SOURCE"] = media["luis_video"]
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("alert")).to_contain_text("Face not recognised")
    audit(page, "login-face-refused")
    for _ in range(3):
        password_login(page, "grace", "wrong password")
    expect(page.get_by_role("alert")).to_contain_text("Too many attempts")
    audit(page, "login-429")
    page.goto("/register")
    audit(page, "register")
    fill_registration(page, media["no_face"], "luis")
    expect(page.get_by_role("alert")).to_be_visible()
    audit(page, "register-error")
    page.locator("#capture-consent").check()
    page.get_by_role("button", name="Take photo with the kiosk camera").click()
    page.wait_for_url("**/register/camera")
    audit(page, "register-camera-confirm")


def test_the_error_pages(page, site, photos):
    from playwright.sync_api import expect

    site.configure(MAX_CONCURRENT_DECODES=1, DECODE_WAIT_SECONDS=0.2, MAX_CONTENT_LENGTH=50_000)
    for path, name in [("/no/such/page", "404"), ("/logout", "405"), ("/kiosks/enrol/used-up", "404-kiosk-link")]:
        page.goto(path)
        audit(page, f"error-{name}")
    page.goto("/register")
    fill_registration(page, photos["grace"])  # larger than 50 kB
    expect(page.get_by_role("alert")).to_contain_text("too large")
    audit(page, "register-413")
    site.configure(MAX_CONCURRENT_DECODES=1, DECODE_WAIT_SECONDS=0.2)
    with limits.Slots(1, 0).hold():  # the only decoding slot is taken
        fill_registration(page, photos["grace"])
        expect(page.get_by_role("alert")).to_contain_text("busy")
    audit(page, "error-503")
    page.goto("/register")
    page.locator("form[enctype='multipart/form-data'] input[name=csrf_token]").evaluate("e => e.remove()")
    fill_registration(page, photos["grace"])
    expect(page.get_by_role("alert")).to_contain_text("expired")
    audit(page, "error-400-csrf")
    site.register("grace", photos["grace"])
    password_login(page, "grace")
    page.wait_for_url("**/protected")
    page.goto("/admin")
    expect(page.get_by_role("alert")).to_contain_text("administrators only")
    audit(page, "error-403")


@pytest.mark.parametrize("registration", ["closed", "staff"])
def test_login_and_registration_refused_to_a_strangers_browser(open_page, site, registration):
    from playwright.sync_api import expect

    site.reset(REGISTRATION=registration)
    page = open_page(kiosk=False)
    page.goto("/login")
    expect(page.get_by_role("note")).to_contain_text("registered kiosk")
    audit(page, "login-not-a-kiosk")
    page.goto("/register")
    expect(page.get_by_role("note")).to_be_visible()
    audit(page, f"register-{registration}")


def test_the_browser_camera_pages(page, site):
    site.configure(CAMERA_MODE="browser")
    for path in ("/login", "/register"):
        page.goto(path)
        page.wait_for_function("() => document.querySelector('video.camera').videoWidth > 0")
        audit(page, f"{path.strip('/')}-browser-camera")


def test_a_persons_own_page(page, site, media, photos):
    from playwright.sync_api import expect

    site.register("grace", photos["grace"])
    with site.app.app_context():
        grace = User.by_username("grace")
        db.session.add(LearnedTemplate(user_id=grace.id, encoding=[grace.face_encodings[0]], distance=0.2))
        db.session.commit()
    password_login(page, "grace")
    page.get_by_label("Photo file of your face").set_input_files(media["grace_altered"])
    page.get_by_role("button", name="Add another photo").click()
    expect(page.get_by_text("Photo 2")).to_be_visible()
    expect(page.get_by_text("Learned ", exact=False).first).to_be_visible()
    audit(page, "protected")


def test_the_administrators_pages(page, site, photos):
    from playwright.sync_api import expect

    site.register("grace", photos["grace"])
    site.register("luis", photos["luis"])
    with site.app.app_context():
        boss = accounts.create_admin("boss", "s3cret pass")
        grace, luis = User.by_username("grace"), User.by_username("luis")
        luis.face_failures, luis.face_disabled = 50, True
        learned = LearnedTemplate(user_id=grace.id, encoding=[grace.face_encodings[0]], distance=0.2)
        db.session.add_all([learned, LoginAttempt(mode="face", outcome="failure", reason="no_blink")])
        db.session.commit()
        ids = {"boss": boss.id, "grace": grace.id, "luis": luis.id, "learned": learned.id}
    with pytest.raises(EnrollError):  # Luis's face again, under another name: a conflict for /admin
        site.register("luis2", photos["luis"])
    password_login(page, "grace", "wrong password")
    password_login(page, "boss", "s3cret pass")
    page.goto("/admin")
    expect(page.get_by_role("heading", name="Recognition health")).to_be_visible()
    expect(page.locator("table[aria-labelledby=conflicts] tbody tr")).to_have_count(1)
    page.wait_for_function("() => [...document.querySelectorAll('img.thumb')].every(i => i.naturalWidth > 0)")
    audit(page, "admin")
    site.app.config["REGISTRATION"] = "staff"
    page.goto("/register")
    expect(page.get_by_role("note")).to_contain_text("You are logged in as boss")
    audit(page, "register-by-staff")
    for path, name in [
        (f"/admin/users/{ids['luis']}/unlock", "confirm-unlock"),
        (f"/admin/users/{ids['grace']}/reset-face", "confirm-reset-face"),
        (f"/admin/users/{ids['grace']}/delete", "confirm-delete"),
        (f"/admin/users/{ids['grace']}/learned/{ids['learned']}", "confirm-forget-learned"),
        (f"/admin/users/{ids['boss']}/delete", "error-409-delete-self"),
    ]:
        page.goto(path)
        audit(page, name)


def test_the_audit_names_the_rule_the_page_and_the_node(page):
    page.goto("/")
    page.evaluate("() => document.querySelector('main').insertAdjacentHTML('beforeend', '<button id=mute></button>')")
    with pytest.raises(AssertionError) as failure:
        audit(page, "home-with-an-unnamed-button")
    message = str(failure.value)
    assert "button-name (critical)" in message and "'home-with-an-unnamed-button'" in message
    assert "#mute" in message and '<button id="mute"></button>' in message


@pytest.mark.parametrize("width, height", [(1080, 1920), (1920, 1080)], ids=["portrait", "landscape"])
def test_the_idle_countdown_is_in_sight_on_a_kiosk_screen(page, site, photos, width, height):
    from playwright.sync_api import expect

    site.register("grace", photos["grace"])
    page.set_viewport_size({"width": width, "height": height})
    password_login(page, "grace")
    timer = page.get_by_role("timer")
    expect(timer).to_have_text("Logging out in 2:00")
    box = timer.bounding_box()
    assert 0 <= box["x"] and box["x"] + box["width"] <= width and 0 <= box["y"] and box["y"] + box["height"] <= height
    # Not covered by anything, and large enough to read at arm's length.
    on_top = """e => {
        const r = e.getBoundingClientRect();
        return e.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2));
    }"""
    assert timer.evaluate(on_top)
    assert timer.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") >= 18
    assert timer.get_attribute("aria-live") in (None, "off")  # a timer is not read out as it ticks
    audit(page, f"protected-{width}x{height}")
    page.screenshot(path=str(SHOTS / f"protected-{width}x{height}.png"))
