"""The kiosk camera in the pages: preview stream, a kiosk photo for registration, browser frames."""

import io
import itertools
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from driver import register_kiosk

from facelogin.engine import faces, preview
from facelogin.engine.camera import Camera, get_camera
from facelogin.services import sessions, storage
from models import db

REMOTE = {"REMOTE_ADDR": "192.0.2.7"}  # a documentation address: never contacted


def _jpeg(part):
    """Decode the JPEG inside one multipart part."""
    head, body = part.split(b"\r\n\r\n", 1)
    assert head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    image = cv2.imdecode(np.frombuffer(body[:-2], np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _frames(path, count):
    """Return `count` frames of a camera source as JPEG files for a multipart post."""
    with Camera(path).burst(count, timeout=5) as frames:
        return [(io.BytesIO(cv2.imencode(".jpg", f)[1].tobytes()), f"f{i}.jpg") for i, f in enumerate(frames)]


def test_stream_shows_the_camera_to_the_kiosk(client):
    response = client.get("/camera/stream")
    assert response.status_code == 200
    assert response.mimetype == "multipart/x-mixed-replace"
    assert response.headers["Cache-Control"] == "no-store"
    assert _jpeg(next(iter(response.response))).shape == (480, 640, 3)
    response.close()


def test_stream_is_refused_to_others_but_not_to_admins(app, client, stranger, runner):
    # Looking local proves nothing (behind a local proxy everyone does): only a device credential
    # or an admin's session opens the camera view.
    response = stranger.get("/camera/stream")
    assert response.status_code == 403 and b"only on a registered kiosk" in response.data
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    stranger.post("/login/password", data={"username": "boss", "password": "s3cret pass"}, environ_base=REMOTE)
    response = stranger.get("/camera/stream", environ_base=REMOTE)
    assert response.status_code == 200
    response.close()
    app.config["CAMERA_MODE"] = "browser"
    response = client.get("/camera/stream")
    assert response.status_code == 409 and b"no server camera" in response.data


def _parts(response, most=100):
    """Read the parts of a stream until it ends (at most `most`); return them."""
    return list(itertools.islice(response.response, most))


def test_a_stream_over_the_limit_is_refused_at_once_and_a_closed_one_frees_its_slot(make_app):
    app = make_app(STREAM_LIMIT=2)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    register_kiosk(app, client)
    first, second = client.get("/camera/stream"), client.get("/camera/stream")
    next(iter(first.response))  # one streams frames, the other has not started yet
    assert first.status_code == second.status_code == 200
    third = client.get("/camera/stream")
    assert third.status_code == 503 and b"2 live camera views are open already" in third.data
    second.close()  # the browser went away before the first frame
    fourth = client.get("/camera/stream")
    assert fourth.status_code == 200
    first.close()
    fourth.close()
    assert client.get("/camera/stream").status_code == 200


def test_a_stream_ends_after_stream_seconds(app, client):
    app.config["STREAM_SECONDS"] = 0.3
    response = client.get("/camera/stream")
    parts = _parts(response)
    assert 1 < len(parts) < 100  # it ended by itself: 8 frames a second for 0.3 s, then the notice
    assert _jpeg(parts[-1]).shape == (480, 640, 3)
    response.close()


def test_an_admins_stream_stops_when_the_admin_logs_out(stranger, runner):
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    stranger.post("/login/password", data={"username": "boss", "password": "s3cret pass"}, environ_base=REMOTE)
    response = stranger.get("/camera/stream", environ_base=REMOTE)
    frames = iter(response.response)
    next(frames)
    stranger.post("/logout", environ_base=REMOTE)
    assert _parts(response) == []  # not one frame more
    response.close()


def test_a_kiosks_stream_stops_when_the_kiosk_is_revoked(app):
    client = app.test_client()
    name = register_kiosk(app, client)
    response = client.get("/camera/stream")
    frames = iter(response.response)
    next(frames)
    with app.app_context():
        sessions.revoke_device(name)
    assert _parts(response) == []
    response.close()


LOOKS = [
    ("grace_altered", 80, None, "Ready", 1),
    ("grace_altered", 400, "too_small", "Move closer", 1),
    ("two_faces", 80, "many_faces", "One person at a time", 2),
    ("dark", 80, "dark", "Too dark - face the light", 1),  # found, but too dark to trust
    ("no_face", 80, "no_face", "Step closer and look at the camera", 0),
    ("tiny_face", 80, "no_face", "Step closer and look at the camera", 0),  # too small for the detector
]


@pytest.mark.parametrize(("picture", "min_height", "problem", "hint", "count"), LOOKS)
def test_a_look_at_real_pictures(media, picture, min_height, problem, hint, count):
    seen = preview.look(cv2.imread(media[picture]), detect_width=320, min_face_height=min_height)
    assert (seen.problem, seen.hint, len(seen.faces)) == (problem, hint, count)
    for left, top, width, height in seen.faces:  # fractions of the frame
        assert 0 <= left < left + width <= 1 and 0 <= top < top + height <= 1


@pytest.mark.parametrize(("picture", "min_height", "problem", "hint", "count"), LOOKS)
def test_the_kiosk_asks_what_the_server_camera_sees(
    app, kiosk, client, media, picture, min_height, problem, hint, count
):
    app.config["MIN_FACE_HEIGHT"] = min_height
    kiosk.look(media[picture])
    response = client.get("/camera/look")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert (response.json["problem"], response.json["hint"], len(response.json["faces"])) == (problem, hint, count)


def test_a_centred_face_is_found_in_the_middle_of_the_frame(client):
    (left, top, width, height), *others = client.get("/camera/look").json["faces"]  # Grace's clip
    assert others == [] and abs(left + width / 2 - 0.5) < 0.1 and 0.2 < height < 0.5


def test_only_a_kiosk_or_an_admin_may_ask_what_the_camera_sees(stranger):
    response = stranger.get("/camera/look")
    assert response.status_code == 403 and b"registered kiosk" in response.data


def test_the_kiosk_browser_posts_a_small_frame_to_be_looked_at(app, client, media):
    app.config["CAMERA_MODE"] = "browser"
    small = cv2.imread(media["grace_altered"])  # 640x480, as the page sends it
    jpeg = cv2.imencode(".jpg", small)[1].tobytes()
    response = client.post("/camera/look", data={"frame": (io.BytesIO(jpeg), "look.jpg")})
    assert response.status_code == 200 and response.json["problem"] is None and len(response.json["faces"]) == 1
    # A look is one small frame: a webcam-sized one is refused, and so is no frame at all.
    big = cv2.imencode(".jpg", cv2.resize(small, (1280, 960)))[1].tobytes()
    refused = client.post("/camera/look", data={"frame": (io.BytesIO(big), "look.jpg")})
    assert refused.status_code == 400 and refused.json["problem"] == "bad_frame"
    assert client.get("/camera/look").status_code == 409  # there is no server camera to read


def test_a_posted_frame_is_refused_when_the_server_has_the_camera(client, media):
    jpeg = cv2.imencode(".jpg", cv2.imread(media["grace_altered"]))[1].tobytes()
    response = client.post("/camera/look", data={"frame": (io.BytesIO(jpeg), "look.jpg")})
    assert response.status_code == 409 and response.json["problem"] == "needs_server"


def test_a_look_answers_busy_at_once_while_a_login_holds_the_camera(app, client):
    camera = get_camera(app.config["CAMERA_SOURCE"])
    with camera.burst(1, timeout=5):
        started = time.monotonic()
        response = client.get("/camera/look")
    assert response.status_code == 503 and response.json["problem"] == "busy"
    assert time.monotonic() - started < 2  # the page asks again in a moment


def test_the_stream_is_mirrored(media):
    frame = cv2.imread(media["grace_altered"])
    shown = preview.mirrored(frame)
    assert np.array_equal(shown, cv2.cvtColor(cv2.flip(frame, 1), cv2.COLOR_BGR2RGB))


def test_preview_holds_the_camera_only_while_reading_a_frame(media):
    camera = Camera(media["grace_video"])
    parts = preview.mjpeg_parts(camera, timeout=5, fps=5)
    started = time.monotonic()
    images = [_jpeg(next(parts)) for _ in range(4)]
    assert time.monotonic() - started >= 0.6  # 5 frames a second at most: 3 gaps of 0.2 s
    assert all(image.shape == (480, 640, 3) for image in images)
    with camera.burst(3, timeout=0.5) as frames:  # free between frames: a login burst gets it
        assert len(list(frames)) == 3
    parts.close()  # what the server does when the browser goes away
    with pytest.raises(StopIteration):
        next(parts)
    assert camera.lock.acquire(blocking=False)


def test_preview_says_when_the_camera_is_missing(tmp_path):
    parts = preview.mjpeg_parts(Camera(str(tmp_path / "none.avi")), 1)
    assert _jpeg(next(parts)).shape == (480, 640, 3)
    parts.close()


def test_face_login_while_the_preview_streams(kiosk, client, photos):
    kiosk.register("grace", photos["grace"])
    stream = client.get("/camera/stream")
    next(iter(stream.response))
    assert kiosk.face_login().headers["Location"] == "/protected"
    stream.close()


def test_register_with_a_kiosk_photo(app, kiosk, client, media, stored_files, user_count):
    kiosk.look(media["grace_altered"])
    response = client.post("/register/capture", data={"consent": "y"})
    assert response.headers["Location"] == "/register/camera"
    page = client.get("/register/camera")
    assert page.status_code == 200 and b'src="/register/camera/photo"' in page.data
    assert client.get("/register/camera/photo").mimetype == "image/jpeg"
    assert [f.split("/")[-2] for f in stored_files()] == ["captures"]
    assert app.test_client().get("/register/camera/photo").status_code == 404  # this session's only
    response = client.post("/register/camera", data={"username": "grace", "password": "correct horse"})
    assert response.headers["Location"] == "/login" and user_count() == 1
    assert [f.rsplit("/", 2)[-2:][0] for f in stored_files()] == ["known_faces", "1"]  # photo, thumbnail
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_a_kiosk_photo_can_be_retaken(kiosk, client, media, stored_files, user_count):
    kiosk.look(media["grace_altered"])
    client.post("/register/capture", data={"consent": "y"})
    assert len(stored_files()) == 1
    assert client.post("/register/camera/discard").headers["Location"] == "/register"
    assert stored_files() == [] and user_count() == 0
    assert client.get("/register/camera").headers["Location"] == "/register"


def _age(path, seconds):
    """Make the file at `path` look written `seconds` ago."""
    os.utime(path, (time.time() - seconds,) * 2)


def test_stale_kiosk_photos_are_swept(app, client, stored_files):
    client.post("/register/capture", data={"consent": "y"})
    old = stored_files()[0]
    _age(old, app.config["CAPTURE_KEEP_SECONDS"] + 1)
    other = app.test_client()
    register_kiosk(app, other, "second-kiosk")
    other.post("/register/capture", data={"consent": "y"})  # somebody else's capture
    assert old not in stored_files() and len(stored_files()) == 1


def test_kiosk_photo_is_never_stored_by_the_browser(client):
    client.post("/register/capture", data={"consent": "y"})
    assert client.get("/register/camera/photo").headers["Cache-Control"] == "no-store"


def test_expired_kiosk_photo_is_neither_shown_nor_used(app, client, stored_files, user_count):
    client.post("/register/capture", data={"consent": "y"})
    _age(stored_files()[0], app.config["CAPTURE_KEEP_SECONDS"] + 1)
    assert client.get("/register/camera/photo").status_code == 404
    response = client.post("/register/camera", data={"username": "grace", "password": "correct horse"})
    assert response.headers["Location"] == "/register" and user_count() == 0


def test_a_timer_deletes_expired_kiosk_photos_without_any_request(app, client, stored_files):
    app.config["CAPTURE_KEEP_SECONDS"] = 300
    client.post("/register/capture", data={"consent": "y"})
    folder = os.path.dirname(stored_files()[0])
    timer = storage._sweepers[folder]  # started by the capture: the kiosk may get no request for hours
    assert timer.daemon and timer.interval == 300
    timer.cancel()
    expired, fresh = stored_files()[0], os.path.join(folder, "fresh.jpg")
    storage.write_atomically(fresh, b"photo")
    _age(expired, 301)
    _age(fresh, 100)
    timer.function(*timer.args)  # what the timer does when it fires, 300 s after the capture
    assert stored_files() == [fresh]
    again = storage._sweepers.pop(folder)  # it waits for the photo that is left to expire
    again.cancel()
    assert 200 < again.interval <= 202


def test_capture_follows_camera_mode(app, client, media, stored_files):
    with open(media["grace_altered"], "rb") as f:
        response = client.post("/register/capture", data={"consent": "y", "frame": (f, "frame.jpg")})
    assert response.status_code == 409 and b"pictures sent by the browser are not accepted" in response.data
    app.config["CAMERA_MODE"] = "browser"
    response = client.post("/register/capture", data={"consent": "y"})
    assert response.status_code == 409 and b"takes pictures in the browser" in response.data
    with open(media["not_an_image"], "rb") as f:
        response = client.post("/register/capture", data={"consent": "y", "frame": (f, "frame.jpg")})
    assert response.status_code == 400 and stored_files() == []
    with open(media["grace_altered"], "rb") as f:
        response = client.post("/register/capture", data={"consent": "y", "frame": (f, "frame.jpg")})
    assert response.headers["Location"] == "/register/camera" and len(stored_files()) == 1


def test_browser_frames_log_in_with_the_same_decision(app, kiosk, client, media, photos):
    kiosk.register("grace", photos["grace"])
    app.config["CAMERA_MODE"] = "browser"
    response = client.post("/login", data={"frame": _frames(media["luis_video"], 4)})
    assert response.status_code == 401 and b"Face not recognised" in response.data
    response = client.post("/login", data={"frame": _frames(media["grace_video"], 4)})
    assert response.headers["Location"] == "/protected"


def test_login_refuses_frames_of_the_wrong_mode(app, kiosk, client, media, photos):
    kiosk.register("grace", photos["grace"])
    response = client.post("/login", data={"frame": _frames(media["grace_video"], 2)})
    assert response.status_code == 409 and b"not accepted" in response.data
    app.config["CAMERA_MODE"] = "browser"
    response = client.post("/login")
    assert response.status_code == 409 and b"takes pictures in the browser" in response.data
    with open(media["not_an_image"], "rb") as f:
        response = client.post("/login", data={"frame": (f, "f.jpg")})
    assert response.status_code == 400 and b"could not be read" in response.data
    assert client.get("/protected").status_code == 302


def test_preview_and_registration_detect_at_once_without_crashing(photos):
    # dlib's HOG detector crashed the process (exit 139) when a preview frame and a
    # registration photo were searched at once; faces.ENGINE_LOCK makes them take turns.
    code = f"""
import threading, cv2
from facelogin.engine import faces
rgb = cv2.cvtColor(cv2.imread({photos["grace"]!r}), cv2.COLOR_BGR2RGB)
big = cv2.resize(rgb, (640, 800))
work = lambda image, width: [faces.detect_faces(image, width) for _ in range(6)]
threads = [threading.Thread(target=work, args=a) for a in ((rgb, 320), (big, 640))]
[t.start() for t in threads]
[t.join() for t in threads]
"""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=root, timeout=120)
    assert done.returncode == 0


def test_preview_hint_and_login_agree_on_the_same_frames(media, photos):
    from media import alter, letterbox, load_bgr, on_canvas, on_stage

    grace = load_bgr(photos["grace"])
    frames = {
        "on_stage": on_stage(grace),  # the old preview said "Ready" here while the login said "too dark"
        "letterbox": letterbox(grace),
        "dim": alter(on_canvas(grace), gain=0.15),
        "canvas": on_canvas(grace),
        "two_faces": cv2.imread(media["two_faces"]),
        "no_face": cv2.imread(media["no_face"]),
    }
    said = {name: preview.look(frame, detect_width=320, min_face_height=80).hint for name, frame in frames.items()}
    login = {
        name: faces.find_single_face(faces.frame_to_rgb(frame), 80, 320, quick=True).problem
        for name, frame in frames.items()
    }
    assert {name: preview.HINTS[problem] for name, problem in login.items()} == said
    assert said["on_stage"] == said["letterbox"] == said["canvas"] == "Ready"
    assert said["dim"] == "Too dark - face the light"
