"""The face engine: decode, detect, encode and match faces, over plain numpy arrays.

Boxes are (top, right, bottom, left) in pixels, as in face_recognition. Images are
RGB uint8 arrays; camera frames arrive from OpenCV as BGR and become RGB in
`frame_to_rgb`, the only colour conversion in the project. Nothing here knows Flask.
"""

import functools
import io
import math
import os
import site
import statistics
import threading
import time
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ENCODING_SIZE = 128


class ImageError(ValueError):
    """The bytes are not an image this engine can use."""


# dlib's detector and networks keep scratch buffers in the shared model objects:
# two threads in them at once crash the process (seen: HOG on two image sizes,
# exit 139). Every call into the engine holds this lock, so concurrent requests
# (threaded server, live preview) take turns: safety before parallelism.
ENGINE_LOCK = threading.Lock()


@functools.cache
def _engine():
    """Import face_recognition on first use: importing it loads four dlib models."""
    import face_recognition

    # Importing it sets Pillow's LOAD_TRUNCATED_IMAGES for the whole process;
    # a truncated upload must be refused, not enrolled half grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    return face_recognition


PHOTO_FORMATS = ("JPEG", "PNG", "WEBP")  # what people upload; TIFF, BMP, GIF and the rest are refused unread
NOT_A_PHOTO = "That file is not a picture we can read - use a JPEG, PNG or WebP photo"


def pixel_limit(im, max_pixels):
    """Return the most pixels an opened picture may have: fewer for the layouts that cost more to decode.

    Peak bytes per pixel, measured (tests/system/test_memory.py): a JPEG shrinks while it
    decodes (a progressive one buffers 6 bytes a pixel, 8 in CMYK); a PNG holds up to 4 and
    shrinking RGBA copies them once more; Pillow's WebP decoder holds 16.
    """
    if im.format == "WEBP":
        return max_pixels // 4
    if im.format == "PNG" or (im.info.get("progressive") and im.mode == "CMYK"):
        return max_pixels // 2
    return max_pixels


def _fit(size, max_pixels):
    """Return `size` (width, height) scaled down, keeping its shape, to at most `max_pixels` pixels."""
    width, height = size
    if width * height <= max_pixels:
        return size
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def read_image(data, max_pixels=16_000_000, work_pixels=4_000_000):
    """Decode JPEG, PNG or WebP bytes into an upright RGB uint8 array of at most `work_pixels`; raise ImageError.

    The header's size is checked before any pixel is decoded: over `max_pixels` (less for
    some formats, see pixel_limit) is refused. A larger picture is shrunk while it decodes
    (JPEG) or right after; 16-bit and float pictures become 8-bit without a float64 copy.
    """
    try:
        with Image.open(io.BytesIO(data), formats=PHOTO_FORMATS) as im:
            limit = pixel_limit(im, max_pixels)
            if im.width * im.height > limit:
                raise ImageError(_too_large(limit))
            return _decode(im, work_pixels)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(_too_large(max_pixels)) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(NOT_A_PHOTO) from e


def _too_large(limit):
    """Return the message refusing a picture of more than `limit` pixels."""
    return f"The picture is too large - use one under {max(1, limit // 1_000_000)} megapixels"


def _decode(im, work_pixels):
    """Decode an opened picture, shrunk to at most `work_pixels`, into an upright RGB uint8 array."""
    im.seek(0)  # first frame of an animation
    if im.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG with extra pictures after the first
        # libjpeg scales by 1/2, 1/4 or 1/8 while decoding: the full-size picture never exists.
        im.draft(im.mode, _fit(im.size, work_pixels))
    im.load()
    if im.mode in ("1", "P", "PA"):
        # Palette and bilevel pixels cannot be averaged: give them their colours first.
        has_alpha = im.mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "L" if im.mode == "1" else "RGB")
    if im.width * im.height > work_pixels:
        im = im.resize(_fit(im.size, work_pixels), Image.Resampling.BOX)
    return _to_rgb8(ImageOps.exif_transpose(im, in_place=True) or im)


def _to_rgb8(im):
    """Return a Pillow image of any mode as an RGB uint8 array (16-bit and float scaled, alpha on white)."""
    if im.mode.startswith("I") or im.mode == "F":
        # 16-bit, 32-bit and float pictures: scaled to their brightest pixel in float32, in place.
        grey = np.array(im, dtype=np.float32)
        np.nan_to_num(grey, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        np.maximum(grey, 0.0, out=grey)
        grey *= 255.0 / (float(grey.max()) or 1.0)
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return np.ascontiguousarray(np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8))


def frame_to_rgb(frame):
    """Convert an OpenCV frame (BGR, BGRA or grey) to an RGB uint8 array."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb, quality=90):
    """Encode an RGB array as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("could not encode the picture")
    return buf.tobytes()


def is_dark(rgb, min_brightness=40.0, min_contrast=12.0):
    """Return True if the image (a frame or a face region) is too dark or too flat to trust a face in it."""
    # Measured on the fixture faces dimmed step by step: below a face mean of ~40 or a
    # spread of ~12 grey levels, the encoding drifts 0.25-0.5 from the well-lit one.
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(grey.mean()) < min_brightness or float(grey.std()) < min_contrast


def face_region(rgb, box):
    """Return the pixels of `rgb` inside a (top, right, bottom, left) box."""
    top, right, bottom, left = box
    return rgb[max(0, top) : bottom, max(0, left) : right]


def detect_faces(rgb, detect_width=320, upsample=1, near=None):
    """Find face boxes with HOG on a copy at most `detect_width` wide (only around the box `near`, if given)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, detect_width / w)
    small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    top, left = 0, 0
    if near is not None:
        (top, bottom), (left, right) = _around(near, scale, small.shape)
        small = np.ascontiguousarray(small[top:bottom, left:right])
    with ENGINE_LOCK:
        boxes = _engine().face_locations(small, number_of_times_to_upsample=upsample, model="hog")
    full = [
        (
            max(0, round((t + top) / scale)),
            min(w, round((r + left) / scale)),
            min(h, round((b + top) / scale)),
            max(0, round((lft + left) / scale)),
        )
        for t, r, b, lft in boxes
    ]
    return sorted(full, key=lambda box: box[3] - box[1] + box[2] - box[0])


NEAR_PAD = 0.25  # the search around a previous face reaches this many face sizes beyond each side
# Without upsampling, HOG finds faces down to about 50 px in the detection copy; a face
# this small there is looked for again upsampled, as the whole-frame search found it.
NEAR_MIN_HEIGHT = 64


def _around(box, scale, shape):
    """Return ((top, bottom), (left, right)) of the region of a detection copy around a full-size `box`."""
    top, right, bottom, left = (round(v * scale) for v in box)
    dy, dx = round((bottom - top) * NEAR_PAD), round((right - left) * NEAR_PAD)
    # Starting on HOG's 8-pixel cell grid, the region's finest level holds the same cells as the
    # whole frame's, and the same face gets the same box (2 px off moved an encoding by 0.1).
    top, left = max(0, top - dy) // 8 * 8, max(0, left - dx) // 8 * 8
    return (top, min(shape[0], bottom + dy)), (left, min(shape[1], right + dx))


def box_height(box):
    """Return the height of a (top, right, bottom, left) box in pixels."""
    return box[2] - box[0]


class FaceCheck(NamedTuple):
    """The one usable face box of an image, or the problem that prevents it."""

    box: tuple | None
    problem: str | None  # None, "dark", "no_face", "many_faces" or "too_small"
    count: int  # faces detected


def check_faces(rgb, min_face_height=80, detect_width=320, upsample=1, quick=False, near=None):
    """Return (FaceCheck, every box found): the one decision the login, enrolment and the preview share.

    With `quick` (camera frames) the detector first looks without upsampling,
    which finds faces down to about twice its smallest size at a quarter of the
    cost, and upsamples only when that finds nothing: a person at the kiosk is
    found fast, and a bystander much further away than them is not looked for.
    Light is judged on the face once one is found, so a well-lit face before a dark
    wall or between black bars passes; a frame is "dark" only when no face is found
    in it and it is dark, or when the face found is itself too dark to trust.

    `near` (the box of the same person in the frame before, within a burst) first looks
    only around it, at the same scale: 1.1 ms instead of 6.3 for a face of 144 px in
    640x480. Unless exactly one face is there, the whole frame is searched as usual.
    """
    if near is not None:
        small_face = box_height(near) * min(1.0, detect_width / rgb.shape[1]) < NEAR_MIN_HEIGHT
        boxes = detect_faces(rgb, detect_width, int(small_face and upsample > 0), near)
        if len(boxes) == 1:
            return _judge(rgb, boxes, min_face_height), boxes
    boxes = detect_faces(rgb, detect_width, 0) if quick and upsample > 0 else []
    if not boxes:
        boxes = detect_faces(rgb, detect_width, upsample)
    return _judge(rgb, boxes, min_face_height), boxes


def _judge(rgb, boxes, min_face_height):
    """Return the FaceCheck of the faces found in `rgb`: one, well enough lit and large enough, or the problem."""
    if not boxes:
        return FaceCheck(None, "dark" if is_dark(rgb) else "no_face", 0)
    if len(boxes) != 1:
        return FaceCheck(None, "many_faces", len(boxes))
    if is_dark(face_region(rgb, boxes[0])):
        return FaceCheck(None, "dark", 1)
    if box_height(boxes[0]) < min_face_height:
        return FaceCheck(None, "too_small", 1)
    return FaceCheck(boxes[0], None, 1)


def find_single_face(rgb, min_face_height=80, detect_width=320, upsample=1, quick=False, near=None):
    """Check that `rgb` shows exactly one well-enough lit face at least `min_face_height` px tall."""
    return check_faces(rgb, min_face_height, detect_width, upsample, quick, near)[0]


def encode_face(rgb, box, jitters=1):
    """Return the 128-d float32 encoding of the face in `box` (landmarks on the full image)."""
    # dlib built with BLAS (make fast-dlib) runs its network's matrix products in
    # OpenBLAS: one thread encoded a face in 20 ms, two took 22-31 ms on 2 busy cores.
    with ENGINE_LOCK, _blas().limit(limits=1, user_api="blas"):
        encodings = _engine().face_encodings(rgb, [box], num_jitters=jitters, model="large")
    return np.asarray(encodings[0], dtype=np.float32)


class EngineBuild(NamedTuple):
    """Which dlib this process runs: its version, whether it was compiled with BLAS, and which."""

    version: str
    blas: bool
    blas_library: str | None  # "OpenBLAS", "MKL", "BLIS"... when dlib loaded one of its own
    distribution: str  # "dlib" (compiled here: make fast-dlib) or "dlib-bin" (the prebuilt wheel)

    def __str__(self):
        """Say it in one line, as the start-up log and the commands print it."""
        if self.blas:
            return f"dlib {self.version} with BLAS ({self.blas_library or 'unknown library'}; {self.distribution})"
        return f"dlib {self.version} without BLAS ({self.distribution}; `make fast-dlib` builds the faster one)"


BLAS_NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "accelerate": "Accelerate"}


@functools.cache
def engine_build():
    """Return the EngineBuild of the dlib installed here, without loading its models."""
    from importlib import metadata

    import dlib  # tens of milliseconds: only face_recognition's import loads the models

    installed = []
    for name in ("dlib", "dlib-bin"):
        try:
            metadata.distribution(name)
            installed.append(name)
        except metadata.PackageNotFoundError:
            pass
    # dlib's own compile-time flag says whether its network uses BLAS. The library is the one
    # loaded from outside the installed wheels: numpy and OpenCV bring their own OpenBLAS inside
    # site-packages, while a dlib compiled here links to the system's.
    wheels = tuple(os.path.realpath(p) + os.sep for p in site.getsitepackages())
    own = [
        lib.internal_api
        for lib in _blas().select(user_api="blas").lib_controllers
        if not os.path.realpath(lib.filepath).startswith(wheels)
    ]
    library = BLAS_NAMES.get(own[0], own[0]) if own and dlib.DLIB_USE_BLAS else None
    return EngineBuild(dlib.__version__, bool(dlib.DLIB_USE_BLAS), library, " and ".join(installed) or "unknown")


def encoding_time(repeats=5):
    """Return the median seconds this machine takes to encode one face (after one untimed call).

    The picture is noise: the landmarks and the network cost the same whatever the
    pixels, and no photo needs to ship with the app.
    """
    rgb = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    box = (25, 175, 175, 25)
    encode_face(rgb, box)  # first call: dlib's buffers are allocated
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encode_face(rgb, box)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def face_crop(rgb, box, pad=0.6, max_side=480):
    """Return the face in `box` with some room around it, at most `max_side` pixels."""
    top, right, bottom, left = box
    h, w = rgb.shape[:2]
    dy, dx = int((bottom - top) * pad), int((right - left) * pad)
    crop = rgb[max(0, top - dy) : min(h, bottom + dy), max(0, left - dx) : min(w, right + dx)]
    scale = max_side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(
            crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )
    return crop


def face_landmarks(rgb, box):
    """Return dlib's 68 landmarks of the face in `box` as a (68, 2) float array, in dlib's order."""
    # The public face_landmarks() regroups the points by feature; the raw shape
    # keeps dlib's numbering (eyes at 36-47), which the liveness maths uses.
    with ENGINE_LOCK:
        shape = _engine().api._raw_face_landmarks(rgb, [box], model="large")[0]
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def face_distance(templates, encoding):
    """Return the Euclidean distance from `encoding` to each row of `templates`."""
    templates = np.asarray(templates, dtype=np.float32).reshape(-1, ENCODING_SIZE)
    return np.linalg.norm(templates - np.asarray(encoding, dtype=np.float32), axis=1)


@functools.cache
def _blas():
    """Return a threadpoolctl controller of the loaded BLAS libraries (finding them is slow, once)."""
    # dlib is imported first (tens of ms, no models) so that the controller also holds the
    # BLAS a source-built dlib links to, which the encoding is pinned through.
    import dlib  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _matvec(matrix, vector):
    """Return matrix @ vector computed on one BLAS thread."""
    # On a 2-core kiosk the other core is busy encoding faces, and OpenBLAS threads
    # waiting for each other turned a 0.06 ms search into 8 ms. The limit costs ~6 us.
    with _blas().limit(limits=1, user_api="blas"):
        return matrix @ vector


class Match(NamedTuple):
    """The closest label for one encoding: its distance and the next other label's distance."""

    label: object
    distance: float
    runner_up: float


class FaceIndex:
    """Every enrolled template in one float32 matrix, searched in one vectorised step."""

    def __init__(self, labels=(), templates=()):
        """Build the index from parallel sequences of labels and 128-d templates."""
        self.labels = np.asarray(list(labels), dtype=object)
        self.matrix = np.asarray(templates, dtype=np.float32).reshape(-1, ENCODING_SIZE)
        if len(self.labels) != len(self.matrix):
            raise ValueError("one label per template")
        # |a-b|^2 = |a|^2 - 2ab + |b|^2: the row norms are paid for once here.
        self.sq_norms = np.einsum("ij,ij->i", self.matrix, self.matrix)
        # One small integer per label: comparing these is ~50x faster than comparing
        # the label objects, which dominated the search at 100k templates.
        codes = {}
        self._codes = np.fromiter(
            (codes.setdefault(label, len(codes)) for label in self.labels), dtype=np.int64, count=len(self.labels)
        )

    @classmethod
    def from_users(cls, rows):
        """Build the index from (label, [template, ...]) pairs."""
        labels, blocks, block = [], [], []
        for label, user_templates in rows:
            for template in user_templates:
                labels.append(label)
                block.append(template)
            if len(block) >= 4096:
                # Lists of Python floats take 8x the memory of float32 rows: convert
                # as we go, or 1M templates peak at 2 GB instead of 0.5 GB.
                blocks.append(np.asarray(block, dtype=np.float32).reshape(-1, ENCODING_SIZE))
                block = []
        blocks.append(np.asarray(block, dtype=np.float32).reshape(-1, ENCODING_SIZE))
        return cls(labels, np.concatenate(blocks))

    def replace(self, rows):
        """Return a new index where each label of `rows` ((label, [template, ...]) pairs) has those templates."""
        rows = list(rows)
        changed = {label for label, _ in rows}
        keep = np.fromiter((label not in changed for label in self.labels), dtype=bool, count=len(self.labels))
        fresh = FaceIndex.from_users(rows)
        return FaceIndex(
            np.concatenate([self.labels[keep], fresh.labels]), np.concatenate([self.matrix[keep], fresh.matrix])
        )

    def only(self, label):
        """Return an index of `label`'s templates alone, for 1:1 verification."""
        keep = self.labels == label
        return FaceIndex(self.labels[keep], self.matrix[keep])

    def __len__(self):
        """Return the number of templates held."""
        return len(self.matrix)

    def _partial(self, q):
        """Return |t|^2 - 2 t.q for every template t: the squared distance less the constant |q|^2."""
        partial = _matvec(self.matrix, q)
        partial *= -2.0
        partial += self.sq_norms
        return partial

    def distances(self, encoding):
        """Return the distance from `encoding` to every template."""
        q = np.asarray(encoding, dtype=np.float32)
        sq = self._partial(q)
        sq += np.float32(q @ q)
        return np.sqrt(np.maximum(sq, 0.0, out=sq), out=sq)

    def identify(self, encoding):
        """Return the closest label and the closest distance among all other labels."""
        if not len(self):
            return Match(None, float("inf"), float("inf"))
        q = np.asarray(encoding, dtype=np.float32)
        # Rank on the partial sums: |q|^2 and the square root are paid for the two answers only.
        partial = self._partial(q)
        best = int(np.argmin(partial))
        others = partial[self._codes != self._codes[best]]
        pair = np.array([partial[best], others.min() if len(others) else np.inf], dtype=np.float32)
        pair += np.float32(q @ q)
        nearest, runner_up = np.sqrt(np.maximum(pair, 0.0))
        return Match(self.labels[best], float(nearest), float(runner_up))


class Decision(NamedTuple):
    """The outcome of a login burst: the accepted label or None, and why."""

    label: object
    reason: str  # "match", "not_recognised", "no_face", "many_faces", "too_small", "dark"
    distance: float
    margin: float
    frames: int
    votes: int
    snapshot: object = None  # the RGB frame the decision rests on, for the optional audit snapshot
    liveness: str = "off"  # "off", "passed" (a blink was seen) or "failed"
    encoding: object = None  # the 128-d encoding of the closest frame, which a confident live login may learn
    box: object = None  # the face's box in `snapshot` when it was encoded: a learned template's thumbnail


def accepts(match, tolerance, margin):
    """Return True if `match` is within tolerance and clear of every other label by `margin`."""
    return match.distance <= tolerance and match.runner_up - match.distance >= margin


def decide_burst(rgb_frames, index, tolerance, margin, consensus=2, min_face_height=80, detect_width=320):
    """Identify the person in a burst of RGB frames; stop as soon as the decision is sure.

    A frame votes for its closest label when `accepts` holds. The burst is
    accepted when `consensus` frames vote for one label and no frame voted for
    another; frames that are dark or lack exactly one large enough face are skipped.
    The first frame is searched whole; each next one first around the face before it
    (check_faces' `near`), so a face appearing elsewhere after the first frame is not looked
    for. The liveness watches search every frame whole before they hand their frames here.
    """
    votes, problems, frames, faces = {}, {}, 0, 0
    best, snapshot, closest, closest_box = Match(None, float("inf"), float("inf")), None, None, None
    last = None  # the face of the frame before: the next frame looks around it first
    for rgb in rgb_frames:
        frames += 1
        snapshot = rgb if snapshot is None else snapshot
        box, problem, _ = last = find_single_face(
            rgb, min_face_height, detect_width, quick=True, near=last and last.box
        )
        if problem:
            problems[problem] = problems.get(problem, 0) + 1
            continue
        faces += 1
        encoding = encode_face(rgb, box)
        match = index.identify(encoding)
        if match.distance < best.distance:
            best, snapshot, closest, closest_box = match, rgb, encoding, box
        if accepts(match, tolerance, margin):
            votes[match.label] = votes.get(match.label, 0) + 1
            if len(votes) > 1 or votes[match.label] >= consensus:
                break  # decided: two people matched (refuse) or enough agreement
    gap = best.runner_up - best.distance
    if not faces:
        reason = max(problems, key=problems.get) if problems else "no_face"
        return Decision(None, reason, best.distance, gap, frames, 0, snapshot)
    if len(votes) == 1:
        ((label, count),) = votes.items()
        if count >= consensus:
            return Decision(
                label, "match", best.distance, gap, frames, count, snapshot, encoding=closest, box=closest_box
            )
    return Decision(None, "not_recognised", best.distance, gap, frames, sum(votes.values()), snapshot)


def should_learn(distance, margin, liveness_passed, enrolled_distance, max_distance, min_margin):
    """Return True if an accepted login's capture may become a learned template of the matched user.

    `distance` and `margin` are the capture's closest match and its lead over the next
    user in the whole gallery; `enrolled_distance` is its distance to the closest of
    the user's enrolment templates. Each must be well inside the login's bars, and
    the liveness check must have passed: a still photo is never learned.
    """
    # Anchoring on the enrolment templates, not on the closest template (which may be
    # learned), means no chain of learned templates can walk away from the enrolled face.
    return bool(
        liveness_passed and distance <= max_distance and enrolled_distance <= max_distance and margin >= min_margin
    )
