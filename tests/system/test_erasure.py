"""Deleting one's own face data in a real browser (Chromium): confirmed, then the face no longer logs in."""

import os

from models import User


def test_delete_my_face_data_then_the_face_login_is_refused(page, site, photos):
    from playwright.sync_api import expect

    site.configure(KIOSK_HANDS_FREE=False, LIVENESS="off")  # the button, on the still camera clip
    site.register("grace", photos["grace"])
    page.goto("/login")
    page.get_by_text("Log in with your password instead").click()
    page.get_by_label("Username", exact=True).fill("grace")
    page.get_by_label("Password", exact=True).fill("correct horse")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()

    page.get_by_role("link", name="Delete my face data").click()
    expect(page.get_by_role("heading", name="Delete your face data?")).to_be_visible()
    page.get_by_role("button", name="Delete my face data").click()
    expect(page.get_by_role("status").first).to_contain_text("Your face data was deleted")
    expect(page.get_by_role("link", name="Delete my face data")).to_have_count(0)  # nothing left to delete
    with site.app.app_context():
        assert User.by_username("grace").templates() == []
    assert os.listdir(site.app.config["KNOWN_FACES_FOLDER"]) == []

    page.get_by_role("button", name="Log out").last.click()
    page.goto("/login")
    page.get_by_role("button", name="Log in with my face").click()
    expect(page.get_by_role("alert")).to_contain_text("Face not recognised")
