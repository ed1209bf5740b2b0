"""The camera: every kind of source through the real OpenCV capture path, and clear errors."""

import io
import threading

import pytest
from PIL import Image

from facelogin.engine.camera import Camera, CameraError, decode_frame, get_camera, kiosk_frames, parse_source


def test_parse_source():
    assert parse_source("0") == 0 and parse_source(2) == 2
    assert parse_source("/dev/video0") == "/dev/video0"
    assert parse_source("rtsp://127.0.0.1/kiosk") == "rtsp://127.0.0.1/kiosk"


def test_video_file_gives_frames_and_loops(media):
    camera = Camera(media["grace_video"])  # a 12-frame clip
    with camera.burst(20, timeout=10) as frames:
        got = list(frames)
    assert len(got) == 20 and got[0].shape == (480, 640, 3)
    assert (got[0] == got[12]).all()  # frame 12 is frame 0 again


def test_image_file_is_a_camera_showing_that_picture(media):
    camera = Camera(media["grace_altered"])
    with camera.burst(3, timeout=5) as frames:
        got = list(frames)
    assert len(got) == 3 and all((f == got[0]).all() for f in got)


@pytest.mark.parametrize("source", ["/nonexistent/video.avi", "/nonexistent/still.jpg", 97])
def test_missing_source_is_no_device(source):
    with pytest.raises(CameraError) as e:
        with Camera(source).burst(3, timeout=2) as frames:
            list(frames)
    assert e.value.reason == "no_device" and "Camera unavailable" in str(e.value)


def test_broken_video_file_gives_no_frames(tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00AVI junk" * 10)
    with pytest.raises(CameraError) as e:
        with Camera(str(broken)).burst(3, timeout=2) as frames:
            list(frames)
    assert e.value.reason in ("no_device", "no_frames")


def test_second_reader_waits_then_gets_busy(media):
    camera = Camera(media["grace_video"])
    holding, release = threading.Event(), threading.Event()

    def hold():
        with camera.burst(1, timeout=5) as frames:
            list(frames)
            holding.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    holding.wait(5)
    with pytest.raises(CameraError) as e:
        with camera.burst(1, timeout=0.2) as frames:
            list(frames)
    release.set()
    t.join()
    assert e.value.reason == "busy"
    with camera.burst(1, timeout=5) as frames:  # free again afterwards
        assert len(list(frames)) == 1


def test_one_camera_per_source(media):
    assert get_camera(media["grace_video"]) is get_camera(media["grace_video"])
    assert get_camera("3") is get_camera(3)


# --- frames posted by the kiosk browser --------------------------------------------------------


def _encoded(fmt, size=(64, 48)):
    """Return an image of `size` encoded by Pillow in `fmt`."""
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buf, format=fmt)
    return buf.getvalue()


def test_posted_frames_are_bounded_and_decoded_one_at_a_time():
    read = []

    def picture(i):
        return lambda: read.append(i) or _encoded("JPEG")

    posted = [picture(i) for i in range(50)]
    with kiosk_frames(None, 3, 1.0, browser=True, posted=posted) as frames:
        first = next(frames)
        assert first.shape == (48, 64, 3) and read == [0]  # nothing decoded ahead of need
        assert len(list(frames)) == 2 and read == [0, 1, 2]  # never more than the count asked for


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        (_encoded("JPEG"), True),
        (_encoded("PNG"), True),
        (_encoded("WEBP"), True),
        (_encoded("GIF"), False),
        (_encoded("TIFF"), False),
        (_encoded("PNG", (2000, 1500)), False),  # more pixels than a webcam frame
        (b"not a picture", False),
    ],
)
def test_posted_frames_accept_only_webcam_pictures(data, ok):
    if ok:
        assert decode_frame(data).ndim == 3
    else:
        with pytest.raises(CameraError) as refused:
            decode_frame(data)
        assert refused.value.reason == "bad_frame" and refused.value.status == 400


@pytest.mark.parametrize(("size", "decoded"), [((1920, 1440), (720, 960)), ((1280, 960), (960, 1280))])
def test_posted_frames_over_a_webcam_size_are_halved_while_decoding(size, decoded):
    for fmt in ("JPEG", "PNG", "WEBP"):
        assert decode_frame(_encoded(fmt, size)).shape[:2] == decoded, fmt


def test_posted_frames_must_fit_the_camera_mode():
    for browser, posted, reason in ((True, [], "needs_browser"), (False, [_encoded("JPEG")], "needs_server")):
        with pytest.raises(CameraError) as refused, kiosk_frames(None, 3, 1.0, browser, posted):
            pass
        assert refused.value.reason == reason and refused.value.status == 409
