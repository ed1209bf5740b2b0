"""The kiosk webcam: one OpenCV capture per source, read in short bursts under a lock.

A source is a device index (0), a device path (/dev/video0), a video file, an
image file (a camera that always shows that picture) or a stream URL. Nothing
here knows about faces, and nothing opens a window.
"""

import io
import itertools
import os
import threading
import time
from contextlib import contextmanager

import cv2
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

MESSAGES = {
    "no_device": "Camera unavailable - check that the kiosk camera is connected",
    "no_frames": "Camera unavailable - the camera sent no picture",
    "timeout": "Camera unavailable - the camera did not answer in time",
    "busy": "Camera busy - please try again in a moment",
    "bad_frame": "A camera picture could not be read - take it again",
    "needs_browser": (
        "This kiosk takes pictures in the browser, not with a server camera - "
        "allow camera access (JavaScript is needed) or use the other option"
    ),
    "needs_server": "This kiosk uses its own camera - pictures sent by the browser are not accepted",
}
# Problems of the request (the pictures sent) rather than of the camera, by the status a web
# caller answers with; every other reason is the camera's and answers 503.
REQUEST_PROBLEMS = {"bad_frame": 400, "needs_browser": 409, "needs_server": 409}
POSTED_FORMATS = ("JPEG", "PNG", "WEBP")
MAX_FRAME_PIXELS = 1920 * 1440  # a webcam frame; anything bigger is not one
FRAME_WORK_PIXELS = 1280 * 960  # bigger frames are halved while decoding: a face at the kiosk needs no more


class CameraError(Exception):
    """The camera could not deliver frames; `reason` is a key of MESSAGES."""

    def __init__(self, reason):
        super().__init__(MESSAGES[reason])
        self.reason = reason
        self.status = REQUEST_PROBLEMS.get(reason, 503)


def parse_source(source):
    """Return a device index for integer-like sources, else the source string."""
    if isinstance(source, int):
        return source
    text = str(source).strip()
    return int(text) if text.isdigit() else text


class Camera:
    """One capture source, opened lazily, read by one request at a time."""

    def __init__(self, source):
        """Remember the source; nothing is opened until the first burst."""
        self.source = parse_source(source)
        self.lock = threading.Lock()
        self._capture = None
        self._still = None

    @property
    def is_still(self):
        """True if the source is an image file, which always shows the same picture."""
        return isinstance(self.source, str) and self.source.lower().endswith(IMAGE_SUFFIXES)

    @property
    def is_file(self):
        """True if the source is a video file, which loops like an endless camera."""
        return isinstance(self.source, str) and os.path.isfile(self.source) and not self.is_still

    def _open(self, timeout):
        """Open the source or raise CameraError("no_device")."""
        if self.is_still:
            self._still = cv2.imread(self.source, cv2.IMREAD_COLOR) if os.path.isfile(self.source) else None
            if self._still is None:
                raise CameraError("no_device")
            return
        ms = int(timeout * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        capture = cv2.VideoCapture(self.source, cv2.CAP_ANY, params)
        if not capture.isOpened():
            capture.release()
            raise CameraError("no_device")
        if isinstance(self.source, int) or self.source.startswith("/dev/"):
            # A live device queues frames; a one-frame buffer keeps them fresh.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = capture

    def close(self):
        """Release the device so that the next burst opens it afresh."""
        if self._capture is not None:
            self._capture.release()
        self._capture, self._still = None, None

    def _read(self):
        """Return the next frame, or None if the source has none right now."""
        if self._still is not None:
            return self._still.copy()
        ok, frame = self._capture.read()
        if not ok and self.is_file:
            # End of a video file: start again, as a camera never runs out.
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        return frame if ok and frame is not None and frame.size else None

    def _frames(self, count, deadline):
        """Yield up to `count` BGR frames before `deadline`."""
        for index in range(count):
            frame = self._read() if time.monotonic() <= deadline else None
            if time.monotonic() > deadline:
                # Too slow: a frame that arrives late is already stale.
                if index == 0:
                    raise CameraError("timeout")
                return
            if frame is None:
                # The device went away or the stream ended: reopen next time.
                self.close()
                if index == 0:
                    raise CameraError("no_frames")
                return
            yield frame

    @contextmanager
    def burst(self, count, timeout):
        """Hold the camera and give an iterator over up to `count` frames within `timeout` s."""
        if not self.lock.acquire(timeout=timeout):
            raise CameraError("busy")
        try:
            deadline = time.monotonic() + timeout
            if self._capture is None and self._still is None:
                self._open(timeout)
            yield self._frames(count, deadline)
        finally:
            self.lock.release()


_cameras = {}
_cameras_lock = threading.Lock()


def get_camera(source):
    """Return the process-wide Camera for `source`, creating it on first use."""
    key = parse_source(source)
    with _cameras_lock:
        if key not in _cameras:
            _cameras[key] = Camera(key)
        return _cameras[key]


def decode_frame(data, max_pixels=MAX_FRAME_PIXELS):
    """Decode one camera picture sent as JPEG, PNG or WebP bytes into a BGR frame, or raise CameraError.

    A frame over FRAME_WORK_PIXELS is halved each way while decoding (JPEG) or at once (the others).
    """
    try:
        # The header gives format and size before any pixel is decoded.
        with Image.open(io.BytesIO(data), formats=POSTED_FORMATS) as im:
            pixels = im.width * im.height
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        pixels = None
    if pixels is None or pixels > max_pixels:
        raise CameraError("bad_frame")
    flag = cv2.IMREAD_REDUCED_COLOR_2 if pixels > FRAME_WORK_PIXELS else cv2.IMREAD_COLOR
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if frame is None or not frame.size:
        raise CameraError("bad_frame")
    return frame


@contextmanager
def kiosk_frames(source, count, timeout, browser=False, posted=()):
    """Give up to `count` BGR frames: the pictures the kiosk browser `posted`, or a burst of `source`.

    `posted` is a list of picture bytes (or of callables returning them), decoded one
    at a time as they are read; it must be non-empty exactly when the kiosk browser
    takes the pictures.
    """
    if browser and not posted:
        raise CameraError("needs_browser")
    if posted and not browser:
        raise CameraError("needs_server")
    if posted:
        yield (decode_frame(data() if callable(data) else data) for data in itertools.islice(posted, count))
        return
    with get_camera(source).burst(count, timeout) as frames:
        yield frames
