"""One's own data in a real browser (Chromium): delete the face data (then the face no longer logs in),
download the data, delete the account."""

import json
import os
from pathlib import Path

from browsing import password_login

from models import User


def test_delete_my_face_data_then_the_face_login_is_refused(page, site, photos):
    from playwright.sync_api import expect

    site.configure(KIOSK_HANDS_FREE=False, LIVENESS="off")  # the button, on the still camera clip
    site.register("grace", photos["grace"])
    password_login(page, "grace")
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


def test_download_my_data_then_delete_my_account(open_page, site, photos):
    from playwright.sync_api import expect

    site.reset()
    site.register("grace", photos["grace"])
    site.register("luis", photos["luis"])
    page = open_page(kiosk=False)  # her own computer: the kiosk keeps no downloads for the next person
    password_login(page, "grace")
    expect(page.get_by_role("heading", name="Hello, grace")).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("link", name="Download my data").click()
    data = json.loads(Path(download.value.path()).read_text())
    assert data["account"]["username"] == "grace" and data["face"]["enrolled_templates"] == 1
    assert data["consent"]["version"] and data["consent"]["consented_at"]
    assert "enrolled_template_numbers" not in data["face"]  # the numbers only when asked
    assert [a["outcome"] for a in data["login_attempts"]] == ["success"]  # her password login, nobody else's

    page.get_by_role("link", name="Delete my account").click()
    expect(page.get_by_role("heading", name="Delete your account?")).to_be_visible()
    page.get_by_label("Your password").fill("correct horse")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("navigation").get_by_role("link", name="Log in")).to_be_visible()  # logged out
    with site.app.app_context():
        assert User.by_username("grace") is None and User.by_username("luis").templates()
    assert os.listdir(site.app.config["KNOWN_FACES_FOLDER"]) and not any(
        name.startswith(f"{data['account']['id']}") for name in os.listdir(site.app.config["KNOWN_FACES_FOLDER"])
    )
