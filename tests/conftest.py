"""Fixtures: real face photos from installed packages, frames and videos made from them,
and a fresh app with its own database and folders for every test."""

import os
from datetime import UTC

import cv2
import numpy as np
import pytest
from driver import Kiosk, register_kiosk

from app import create_app
from media import (
    alter,
    blink_video,
    close_eyes,
    load_bgr,
    on_canvas,
    person_video,
    photo_paths,
    scene,
    squash,
    write_video,
)
from models import db


@pytest.fixture(scope="session")
def photos():
    """Paths of real photos: two different people and a two-box case."""
    paths = photo_paths()
    for path in paths.values():
        assert os.path.isfile(path), path
    return paths


@pytest.fixture(scope="session")
def media(photos, tmp_path_factory):
    """Camera sources and uploads made from the real photos."""
    d = tmp_path_factory.mktemp("media")
    grace, luis = load_bgr(photos["grace"]), load_bgr(photos["luis"])
    files = {
        "grace_video": person_video(d / "grace.avi", photos["grace"]),
        "luis_video": person_video(d / "luis.avi", photos["luis"]),
        "empty_video": write_video(d / "empty.avi", [scene(i) for i in range(8)]),
        "dark_video": write_video(d / "dark.avi", [alter(on_canvas(grace), gain=0.08) for _ in range(6)]),
    }
    images = {
        "grace_altered": on_canvas(alter(grace, angle=-4, gain=1.1, quality=60, flip=True)),
        "luis_frame": on_canvas(luis),
        "two_faces": np.hstack([on_canvas(grace, (400, 480), 440), on_canvas(luis, (400, 480), 440)]),
        "no_face": scene(42),
        "tiny_face": on_canvas(grace, (640, 480), 110),
        "dark": alter(grace, gain=0.08),
    }
    for name, image in images.items():
        path = str(d / f"{name}.jpg")
        cv2.imwrite(path, image)
        files[name] = path
    not_image = d / "not_an_image.jpg"
    not_image.write_text("this is not a picture\n")
    files["not_an_image"] = str(not_image)
    return files


@pytest.fixture
def make_app(tmp_path, media):
    """Return a function creating an app with the test settings; keyword arguments override them.

    Apps made in one test share the database file and folders, like processes of one site.
    """

    def make(**config):
        settings = {
            "TESTING": True,
            "SECRET_KEY": "test",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.sqlite'}",
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
            "KNOWN_FACES_FOLDER": str(tmp_path / "known_faces"),
            "CAMERA_SOURCE": media["grace_video"],
            "CAMERA_TIMEOUT": 10.0,
            "WTF_CSRF_ENABLED": False,
            # A cheap hash keeps the suite fast; test_sessions checks the real default.
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
            # Recognition tests play still clips; the liveness tests (engine/test_liveness,
            # system/test_challenge) run with the shipped default, LIVENESS=challenge.
            "LIVENESS": "off",
            **config,
        }
        # None means "the real default": LIVENESS=None gives the shipped LIVENESS=challenge.
        app = create_app({key: value for key, value in settings.items() if value is not None})
        app.instance_path = str(tmp_path / "instance")
        return app

    return make


@pytest.fixture
def app(make_app):
    """A fresh app with its own SQLite database and folders; the camera plays Grace's clip."""
    app = make_app()
    with app.app_context():
        db.create_all()
    yield app


@pytest.fixture
def client(app):
    """A test client in a registered kiosk browser (it carries the device credential)."""
    client = app.test_client()
    register_kiosk(app, client)
    return client


@pytest.fixture
def stranger(app):
    """A test client in a browser that is not a registered kiosk."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for the app's commands."""
    return app.test_cli_runner()


@pytest.fixture
def kiosk(app, client):
    """Drive the kiosk as a person would."""
    return Kiosk(app, client)


@pytest.fixture
def grace_in(kiosk, photos):
    """Grace, registered with her photo file and logged in with her password, at the kiosk."""
    kiosk.register("grace", photos["grace"])
    kiosk.password_login("grace", "correct horse")
    return kiosk


@pytest.fixture
def stored_files(app):
    """Return a function listing every file kept in the upload and known-faces folders."""

    def list_files():
        found = []
        for key in ("UPLOAD_FOLDER", "KNOWN_FACES_FOLDER"):
            for root, _, names in os.walk(app.config[key]):
                found += [os.path.join(root, n) for n in names if n != ".gitkeep"]
        return sorted(found)

    return list_files


@pytest.fixture
def user_count(app):
    """Return a function counting the rows of the users table."""
    from models import User

    def count():
        with app.app_context():
            return db.session.scalar(db.select(db.func.count(User.id)))

    return count


@pytest.fixture(scope="session")
def people_dir(photos, tmp_path_factory):
    """A labelled folder DIR/<person>/*.jpg: three people, four altered photos each."""
    root = tmp_path_factory.mktemp("people")
    astronaut = load_bgr(photos["astronaut"])[20:260, 100:340]  # her face, without the patch
    sources = {
        "grace": load_bgr(photos["grace"]),
        "luis": load_bgr(photos["luis"]),
        "eileen": cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC),
    }
    variants = [
        dict(),
        dict(angle=4, gain=0.9, quality=60),
        dict(angle=-3, gain=1.1, flip=True),
        dict(gain=0.75, quality=40, scale=0.9),
    ]
    for name, image in sources.items():
        (root / name).mkdir()
        for i, params in enumerate(variants):
            cv2.imwrite(str(root / name / f"{i}.jpg"), alter(image, **params))
    return str(root)


@pytest.fixture(scope="session")
def postgres_server():
    """Admin URL of a PostgreSQL server: TEST_POSTGRES_URL, else a throwaway cluster on 127.0.0.1.

    Without PostgreSQL the test is skipped, except under CI=true, where it fails.
    """
    import pg_cluster

    if os.environ.get("TEST_POSTGRES_URL"):
        yield os.environ["TEST_POSTGRES_URL"]
        return
    cluster = None
    try:
        cluster = pg_cluster.Cluster()
        url = cluster.start()
    except pg_cluster.Unavailable as e:
        if cluster is not None:
            cluster.stop()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test PostgreSQL: {e}")
        pytest.skip(f"no local PostgreSQL: {e}")
    yield url
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """URL of a new empty PostgreSQL database, dropped after the test."""
    import pg_cluster

    url = pg_cluster.create_database(postgres_server)
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture
def clock(monkeypatch):
    """A clock for lockouts and rate limits that tests move by hand instead of sleeping."""
    from datetime import datetime, timedelta

    from facelogin.services import attempts, throttle

    class Clock:
        now = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

        def __call__(self):
            return self.now

        def advance(self, seconds):
            self.now += timedelta(seconds=seconds)

    fake = Clock()
    monkeypatch.setattr(attempts, "clock", fake)
    monkeypatch.setattr(throttle, "clock", fake)
    return fake


@pytest.fixture(scope="session")
def blink_media(photos, tmp_path_factory):
    """Clips with a real blink, with another person's blink spliced in, and with a tilted photo."""
    d = tmp_path_factory.mktemp("blinks")
    grace, luis = on_canvas(load_bgr(photos["grace"])), on_canvas(load_bgr(photos["luis"]))
    astronaut = on_canvas(load_bgr(photos["astronaut"])[0:260, 100:330])  # the face, without the patch
    return {
        "grace_blinks": blink_video(d / "grace_blinks.avi", grace, close_eyes(grace)),
        "astronaut_blinks_in_grace": blink_video(d / "astronaut_in_grace.avi", grace, close_eyes(astronaut)),
        "grace_blinks_in_luis": blink_video(d / "grace_in_luis.avi", luis, close_eyes(grace)),
        "luis_tilted": blink_video(d / "luis_tilted.avi", luis, squash(luis, 0.6)),
    }
