"""Drive the kiosk as a person would, through Flask's test client."""

import re
import secrets

from facelogin.engine import camera
from facelogin.services import sessions


def register_kiosk(app, client, name=None):
    """Register `client`'s browser as kiosk `name`, as an operator would with `flask kiosks add`."""
    name = name or f"kiosk-{secrets.token_hex(4)}"
    with app.app_context():
        code = sessions.add_device(name)
    response = client.get(f"/kiosks/enrol/{code}")
    assert response.status_code == 302, response.data
    return name


def open_kiosk(app):
    """Create `app`'s tables and return a Kiosk whose browser is registered: a kiosk on its first day."""
    from models import db

    with app.app_context():
        db.create_all()
    client = app.test_client()
    register_kiosk(app, client)
    return Kiosk(app, client)


def force_challenge(app, client, direction):
    """Make `client`'s next login page ask for `direction`, as if the server had drawn it."""
    from models import LoginChallenge, db

    nonce = secrets.token_urlsafe(16)
    with app.app_context():
        db.session.add(LoginChallenge(nonce=nonce, direction=direction))
        db.session.commit()
    with client.session_transaction() as session:
        session["challenge"] = nonce
    return nonce


def page_challenge(page):
    """Return the (challenge, nonce) a login page carries, or (None, None)."""
    challenge = re.search(rb'data-challenge="([a-z]+)"', page)
    nonce = re.search(rb'name="nonce" type="hidden" value="([^"]*)"', page) or re.search(
        rb'value="([^"]*)"[^>]*name="nonce"', page
    )
    return (challenge.group(1).decode() if challenge else None, nonce.group(1).decode() if nonce else None)


class Kiosk:
    """Actions a person takes at the kiosk, through the test client."""

    def __init__(self, app, client):
        self.app, self.client = app, client

    def register(self, username="grace", photo=None, password="correct horse", consent="y", **extra):
        """POST the registration form with a photo file, the consent box ticked unless consent=None."""
        with open(photo, "rb") as f:
            data = {"username": username, "password": password, "photo": (f, "face.jpg"), **extra}
            if consent is not None:
                data["consent"] = consent
            return self.client.post("/register", data=data, content_type="multipart/form-data")

    def look(self, source):
        """Point the kiosk camera at another source, played from its start (a person walking up)."""
        camera.get_camera(source).close()
        self.app.config["CAMERA_SOURCE"] = source

    def challenge(self):
        """Open the login page and return the (challenge, nonce) it shows."""
        return page_challenge(self.client.get("/login").data)

    def face_login(self, data=None, nonce=None):
        """Press "Log in with my face" on the login page (with its challenge's nonce)."""
        data = dict(data or {})
        if self.app.config["LIVENESS"] == "challenge":
            data.setdefault("nonce", nonce or self.challenge()[1])
        return self.client.post("/login", data=data)

    def register_password_only(self, username="grace", password="correct horse"):
        """POST the "Register without face login" form."""
        return self.client.post("/register/password", data={"username": username, "password": password})

    def password_login(self, username, password):
        """Use the password fallback."""
        return self.client.post("/login/password", data={"username": username, "password": password})

    def add_photo(self, path, consent=None):
        """Add another photo file on the logged-in user's page (the consent box ticked with consent="y")."""
        with open(path, "rb") as f:
            data = {"photo": (f, "more.jpg")} | ({"consent": consent} if consent is not None else {})
            return self.client.post("/protected/faces", data=data, content_type="multipart/form-data")
