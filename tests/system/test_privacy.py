"""The person's own face in Chromium: consent before any face data is taken, and the password-only account.

The fixtures (site, chromium, browser, open_page, page) are in tests/system/conftest.py.
"""

import os

from browsing import shot

from facelogin.services import consent
from models import User, db


def _files(site):
    """Return every file kept in the site's upload and known-faces folders."""
    return [
        os.path.join(root, name)
        for key in ("UPLOAD_FOLDER", "KNOWN_FACES_FOLDER")
        for root, _, names in os.walk(site.app.config[key])
        for name in names
    ]


def _consent_of(site, username):
    """Return (consent version, whether a time is recorded) of `username`, or None if there is no such user."""
    with site.app.app_context():
        user = User.by_username(username)
        return None if user is None else (user.consent_version, user.consented_at is not None)


def test_registration_with_a_photo_file_is_refused_until_the_box_is_ticked(page, site, photos):
    from playwright.sync_api import expect

    site.configure(LIVENESS="off")
    page.goto("/register")
    expect(page.locator("#consent-notice")).to_contain_text("Who sees it:")
    form = page.locator("form", has=page.get_by_label("Photo of your face"))
    form.get_by_label("Username").fill("grace")
    form.get_by_label("Password").fill("correct horse")
    form.get_by_label("Photo of your face").set_input_files(photos["grace"])
    expect(form.get_by_label("I agree")).not_to_be_checked()
    form.get_by_role("button", name="Register", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(consent.REFUSED)
    shot(page, "register-no-consent")
    assert _consent_of(site, "grace") is None and _files(site) == []
    form.get_by_label("Password").fill("correct horse")  # a refused form does not send the password back
    form.get_by_label("Photo of your face").set_input_files(photos["grace"])
    form.get_by_label("I agree").check()
    form.get_by_role("button", name="Register", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Welcome, grace!")
    with site.app.app_context():
        version = consent.current_version()
    assert _consent_of(site, "grace") == (version, True)


def test_the_kiosk_camera_takes_no_photo_until_the_box_is_ticked(page, site):
    from playwright.sync_api import expect

    page.goto("/register")
    page.get_by_role("button", name="Take photo with the kiosk camera").click()
    expect(page.get_by_role("alert")).to_have_text(consent.REFUSED)
    assert "/register/camera" not in page.url and _files(site) == []
    page.locator("#capture-consent").check()
    page.get_by_role("button", name="Take photo with the kiosk camera").click()
    page.wait_for_url("**/register/camera")
    expect(page.get_by_text("You agreed, when you took it")).to_be_visible()


def test_a_password_only_account_and_a_face_added_later_with_consent(page, site, photos):
    from playwright.sync_api import expect

    page.goto("/register")
    form = page.locator("form", has=page.get_by_role("button", name="Register without face login"))
    form.get_by_label("Username").fill("ada")
    form.get_by_label("Password").fill("correct horse")
    form.get_by_role("button", name="Register without face login").click()
    expect(page.get_by_role("status").first).to_contain_text("Log in with your username and password")
    assert _consent_of(site, "ada") == (None, False) and _files(site) == []
    page.get_by_text("Log in with your password instead").click()
    page.get_by_label("Username", exact=True).fill("ada")
    page.get_by_label("Password", exact=True).fill("correct horse")
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url("**/protected")
    expect(page.get_by_text("Face login is off for you")).to_be_visible()
    shot(page, "protected-password-only")
    upload = page.locator("form", has=page.get_by_label("Photo file of your face"))
    upload.get_by_label("Photo file of your face").set_input_files(photos["grace"])
    upload.get_by_role("button", name="Add a photo").click()
    expect(page.get_by_role("alert")).to_have_text(consent.REFUSED_TO_ADD)
    upload.get_by_label("Photo file of your face").set_input_files(photos["grace"])
    upload.get_by_label("I agree").check()
    upload.get_by_role("button", name="Add a photo").click()
    expect(page.get_by_role("status").first).to_contain_text("Photo added")
    assert _consent_of(site, "ada")[1] is True
    with site.app.app_context():
        assert len(db.session.execute(db.select(User)).scalar_one().templates()) == 1
