"""Fixtures: real face photos from installed packages, frames and videos made from them,
and a fresh app with its own database and folders for every test."""

import os
import sys

import cv2
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import create_app  # noqa: E402
from models import db  # noqa: E402

FRAME_SIZE = (640, 480)


def _package_file(package, *parts):
    """Return the path of a data file shipped inside an installed package."""
    module = __import__(package)
    return os.path.join(os.path.dirname(module.__file__), *parts)


@pytest.fixture(scope="session")
def photos():
    """Paths of real photos: two different people and a two-box case."""
    paths = {
        "grace": _package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
        "luis": _package_file("mahotas", "demos", "data", "luispedro.jpg"),
        "astronaut": _package_file("skimage", "data", "astronaut.png"),
    }
    for path in paths.values():
        assert os.path.isfile(path), path
    return paths


def load_bgr(path):
    """Read a photo as an OpenCV BGR array."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


def alter(image, angle=0.0, gain=1.0, quality=95, flip=False, scale=1.0):
    """Return a changed copy of a photo: rotation, lighting, JPEG loss, mirror, size."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    if flip:
        out = cv2.flip(out, 1)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def on_canvas(image, size=FRAME_SIZE, height=420, background=(90, 110, 120)):
    """Place a photo, scaled to `height` px, in the middle of a camera-sized frame."""
    w, h = size
    scale = height / image.shape[0]
    photo = cv2.resize(image, (round(image.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = background
    y, x = (h - photo.shape[0]) // 2, (w - photo.shape[1]) // 2
    canvas[y:y + photo.shape[0], x:x + photo.shape[1]] = photo
    return canvas


def scene(seed=0, size=FRAME_SIZE):
    """A textured room with no face in it."""
    w, h = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    room = 60 + 120 * x * np.array([1.0, 0.8, 0.6]) + 50 * y
    room = room + rng.normal(0, 12, (h, w, 3))
    cv2.rectangle(room, (60, 80), (220, 400), (40, 60, 150), -1)  # a door
    return np.clip(room, 0, 255).astype(np.uint8)


def write_video(path, frames, fps=30):
    """Write BGR frames to a Motion-JPEG AVI that OpenCV can play back."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path)


def person_video(path, photo, frames=12):
    """A short camera clip of one person: small head movements, changing light."""
    image = load_bgr(photo)
    clip = [on_canvas(alter(image, angle=3 * np.sin(i), gain=0.85 + 0.03 * (i % 5), quality=70))
            for i in range(frames)]
    return write_video(path, clip)


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
        app = create_app({
            "TESTING": True,
            "SECRET_KEY": "test",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.sqlite'}",
            "UPLOAD_FOLDER": str(tmp_path / "uploads"),
            "KNOWN_FACES_FOLDER": str(tmp_path / "known_faces"),
            "CAMERA_SOURCE": media["grace_video"],
            "CAMERA_TIMEOUT": 10.0,
            "WTF_CSRF_ENABLED": False,
            # A cheap hash keeps the suite fast; test_security checks the real default.
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
            **config,
        })
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
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for the app's commands."""
    return app.test_cli_runner()


class Kiosk:
    """Actions a person takes at the kiosk, through the test client."""

    def __init__(self, app, client):
        self.app, self.client = app, client

    def register(self, username="grace", photo=None, password="correct horse", **extra):
        """POST the registration form with a photo file."""
        with open(photo, "rb") as f:
            data = {"username": username, "password": password, "photo": (f, "face.jpg"), **extra}
            return self.client.post("/register", data=data, content_type="multipart/form-data")

    def look(self, source):
        """Point the kiosk camera at another source."""
        self.app.config["CAMERA_SOURCE"] = source

    def face_login(self):
        """Press "Log in with my face"."""
        return self.client.post("/login")

    def password_login(self, username, password):
        """Use the password fallback."""
        return self.client.post("/login/password", data={"username": username, "password": password})


@pytest.fixture
def kiosk(app, client):
    """Drive the kiosk as a person would."""
    return Kiosk(app, client)


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
    variants = [dict(), dict(angle=4, gain=0.9, quality=60), dict(angle=-3, gain=1.1, flip=True),
                dict(gain=0.75, quality=40, scale=0.9)]
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
    from datetime import datetime, timedelta, timezone

    import lockout

    class Clock:
        now = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)

        def __call__(self):
            return self.now

        def advance(self, seconds):
            self.now += timedelta(seconds=seconds)

    fake = Clock()
    monkeypatch.setattr(lockout, "clock", fake)
    return fake


BLINK_AT = range(16, 20)  # the closed-eye frames of the blink clips: 4 frames (133 ms at 30 fps)


def close_eyes(image):
    """Paint the eyes of the one face in a BGR image shut: cheek skin over each eye, a dark lid slit."""
    import faces

    rgb = faces.frame_to_rgb(image)
    points = faces.face_landmarks(rgb, faces.find_single_face(rgb).box)
    out = image.astype(np.float32)
    for eye in (points[36:42], points[42:48]):
        centre = eye.mean(axis=0)
        eye = centre + (eye - centre) * (1.2, 1.0)  # a little wider than the landmarks
        width = np.linalg.norm(eye[3] - eye[0])
        cheek = image[int(centre[1] + 0.6 * width):int(centre[1] + 0.9 * width), int(eye[0][0]):int(eye[3][0])]
        mask = np.zeros(image.shape[:2], np.float32)
        angle = np.degrees(np.arctan2(*(eye[3] - eye[0])[::-1]))
        axes = (round(0.75 * width), round(0.5 * width))
        cv2.ellipse(mask, tuple(int(v) for v in centre.round()), axes, angle, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.1 * width)[..., None]  # soft edge: no new eye outline
        out = out * (1 - mask) + np.median(cheek.reshape(-1, 3), axis=0) * mask
        # The closed lid: a thin dark slit from corner to corner, sagging a little.
        t = np.linspace(0, 1, 16)[:, None]
        middle = eye[0] + t * (eye[3] - eye[0]) + (0, 0.08 * width) * np.sin(np.pi * t)
        half = (0, 0.05 * width) * np.sin(np.pi * t)
        slit = np.vstack([middle - half, (middle + half)[::-1]]).round().astype(np.int32)
        cv2.fillPoly(out, [slit], (30, 30, 40), cv2.LINE_AA)
    return out.astype(np.uint8)


def squash(image, factor):
    """Shrink a picture vertically about its middle, as a photo tilted back looks to the camera."""
    h, w = image.shape[:2]
    m = np.float32([[1, 0, 0], [0, factor, (1 - factor) * h / 2]])
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def blink_video(path, open_image, blink_image, frames=36):
    """A 30 fps clip like person_video: `open_image`, with `blink_image` at the BLINK_AT frames."""
    clip = [alter(blink_image if i in BLINK_AT else open_image,
                  angle=3 * np.sin(i), gain=0.85 + 0.03 * (i % 5), quality=70) for i in range(frames)]
    return write_video(path, clip)


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
