"""Hostile and odd uploads and fields at /register: a clear 4xx, nothing written, server fine."""

import io
import struct
import zlib

import pytest
from PIL import Image
from werkzeug.datastructures import MultiDict

from facelogin.services import thumbnails
from models import User, db


def _png_header_only(width, height):
    """A PNG whose header declares width x height but holds almost no data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def _encode(image, fmt, **params):
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _post(client, photo_bytes, filename="face.jpg", **fields):
    data = {
        "username": "grace",
        "password": "correct horse",
        "consent": "y",
        **fields,
        "photo": (io.BytesIO(photo_bytes), filename),
    }
    return client.post("/register", data=data, content_type="multipart/form-data")


@pytest.fixture(scope="module")
def grace_image(photos):
    return Image.open(photos["grace"]).convert("RGB")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("zero bytes", b"not a picture we can read"),
        ("truncated jpeg", b"not a picture we can read"),
        ("text named jpg", b"not a picture we can read"),
        ("png bomb", b"too large"),
        ("gif", b"use a JPEG, PNG or WebP photo"),
        ("tiff", b"use a JPEG, PNG or WebP photo"),
    ],
)
def test_broken_files_are_refused(client, photos, name, message, stored_files, user_count):
    original = open(photos["grace"], "rb").read()
    data = {
        "zero bytes": b"",
        "truncated jpeg": original[: len(original) // 3],
        "text named jpg": b"Dear kiosk, this is a letter, not a photo.\n" * 20,
        "png bomb": _png_header_only(100_000, 100_000),
        "gif": _encode(Image.open(photos["grace"]), "GIF"),
        "tiff": _encode(Image.open(photos["grace"]), "TIFF"),
    }[name]
    response = _post(client, data)
    assert response.status_code == 400 and message in response.data
    assert user_count() == 0 and stored_files() == []


@pytest.mark.parametrize(
    "kind", ["animated png", "webp", "cmyk jpeg", "16-bit png", "greyscale", "rgba png", "exif-rotated portrait"]
)
def test_unusual_but_valid_images_register(client, grace_image, kind, user_count):
    if kind == "animated png":
        frames = [grace_image, grace_image.rotate(5)]
        data = _encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)
    elif kind == "webp":
        data = _encode(grace_image, "WEBP")
    elif kind == "cmyk jpeg":
        data = _encode(grace_image.convert("CMYK"), "JPEG")
    elif kind == "16-bit png":
        data = _encode(grace_image.convert("L").convert("I;16"), "PNG")
    elif kind == "greyscale":
        data = _encode(grace_image.convert("L"), "JPEG")
    elif kind == "rgba png":
        data = _encode(grace_image.convert("RGBA"), "PNG")
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # stored on its side, "rotate 90 clockwise to view"
        data = _encode(grace_image.rotate(90, expand=True), "JPEG", exif=exif)
    response = _post(client, data)
    assert response.status_code == 302, response.data[-600:]
    assert user_count() == 1


class CountingStream(io.RawIOBase):
    """A request body of `size` bytes that counts how much of it the server reads."""

    def __init__(self, size):
        self.size, self.position, self.read_bytes = size, 0, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=io.SEEK_SET):
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence] + offset
        return self.position

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = b"\xff" * n
        self.position += n
        self.read_bytes += n
        return n


def test_50mb_body_is_refused_before_it_is_read(client, stored_files, user_count):
    body = CountingStream(50 * 1024 * 1024)
    response = client.post(
        "/register", input_stream=body, content_length=body.size, content_type="multipart/form-data; boundary=xyz"
    )
    assert response.status_code == 413 and b"too large" in response.data
    assert body.read_bytes < 1024 * 1024  # refused from the Content-Length header
    assert user_count() == 0 and stored_files() == []
    assert client.get("/").status_code == 200  # and the server keeps serving


@pytest.mark.parametrize("filename", ["../../etc/passwd.jpg", "..\\..\\boot.ini", "face\x00.php.jpg", "/abs/x.jpg"])
def test_client_file_names_are_never_used(app, client, photos, filename, stored_files):
    response = _post(client, open(photos["grace"], "rb").read(), filename=filename)
    assert response.status_code == 302
    with app.app_context():
        thumbnail = thumbnails.path(1, db.session.get(User, 1).templates()[0]).rsplit("/", 1)[-1]
    names = [path.rsplit("/", 2)[-2:] for path in stored_files()]
    assert names == [["known_faces", "1.jpg"], ["1", thumbnail]]  # the server's own names, nothing else anywhere


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("x" * 10_000, b"Use 3 to 64 letters, digits"),
        ("gr\u0430ce", b"Use 3 to 64 letters, digits"),  # Cyrillic a: a look-alike of grace
        ("\uff47race", b"Use 3 to 64 letters, digits"),  # full-width g
        ("'; DROP TABLE users; --", b"Use 3 to 64 letters, digits"),
        ("<script>alert(1)</script>", b"Use 3 to 64 letters, digits"),
    ],
)
def test_hostile_usernames_are_refused(client, photos, username, message, user_count):
    response = _post(client, open(photos["grace"], "rb").read(), username=username)
    assert response.status_code == 400 and message in response.data
    assert b"<script>alert(1)</script>" not in response.data  # echoed back escaped, if at all
    assert user_count() == 0


def test_long_password_is_refused(client, photos, user_count):
    response = _post(client, open(photos["grace"], "rb").read(), password="p" * 10_000)
    assert response.status_code == 400 and b"Use 8 to 128 characters" in response.data
    assert user_count() == 0


def test_html_in_password_login_is_escaped(kiosk):
    response = kiosk.password_login("<b>x</b>\"'", "whatever1")
    assert response.status_code == 401
    assert b"<b>x</b>" not in response.data and b"&lt;b&gt;x&lt;/b&gt;" in response.data


def test_duplicated_fields_take_the_first(app, client, photos):
    with open(photos["grace"], "rb") as f:
        data = MultiDict(
            [
                ("username", "grace"),
                ("username", "mallory"),
                ("password", "correct horse"),
                ("password", "other password"),
                ("consent", "y"),
                ("photo", (f, "a.jpg")),
            ]
        )
        response = client.post("/register", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        assert [u.username for u in db.session.execute(db.select(User)).scalars()] == ["grace"]
