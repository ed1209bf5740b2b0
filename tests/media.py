"""Image and video synthesis for the tests: frames, clips and altered copies of real face photos.

The photos come from installed packages (matplotlib, mahotas, scikit-image); everything
else is made from them here, so the tests need no network and no stored media.
"""

import io
import os

import cv2
import numpy as np
from PIL import Image

from facelogin.engine import faces

FRAME_SIZE = (640, 480)
# Real face photos shipped inside installed packages: two people and a two-box case.
PHOTOS = {
    "grace": ("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
    "luis": ("mahotas", "demos", "data", "luispedro.jpg"),
    "astronaut": ("skimage", "data", "astronaut.png"),
}


def package_file(package, *parts):
    """Return the path of a data file shipped inside an installed package."""
    module = __import__(package)
    return os.path.join(os.path.dirname(module.__file__), *parts)


def photo_paths():
    """Return {name: path} of the real photos in PHOTOS."""
    return {name: package_file(*where) for name, where in PHOTOS.items()}


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
    canvas[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
    return canvas


def two_people(left, right, size=FRAME_SIZE, height=300):
    """A camera-sized frame with two photos side by side, each scaled to `height` px: two faces at the kiosk."""
    w, h = size
    return np.hstack([on_canvas(left, (w // 2, h), height), on_canvas(right, (w - w // 2, h), height)])


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
    clip = [on_canvas(alter(image, angle=3 * np.sin(i), gain=0.85 + 0.03 * (i % 5), quality=70)) for i in range(frames)]
    return write_video(path, clip)


BLINK_AT = range(16, 20)  # the closed-eye frames of the blink clips: 4 frames (133 ms at 30 fps)


def close_eyes(image):
    """Paint the eyes of the one face in a BGR image shut: cheek skin over each eye, a dark lid slit."""
    rgb = faces.frame_to_rgb(image)
    points = faces.face_landmarks(rgb, faces.find_single_face(rgb).box)
    out = image.astype(np.float32)
    for eye in (points[36:42], points[42:48]):
        centre = eye.mean(axis=0)
        eye = centre + (eye - centre) * (1.2, 1.0)  # a little wider than the landmarks
        width = np.linalg.norm(eye[3] - eye[0])
        cheek = image[int(centre[1] + 0.6 * width) : int(centre[1] + 0.9 * width), int(eye[0][0]) : int(eye[3][0])]
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
    clip = [
        alter(blink_image if i in BLINK_AT else open_image, angle=3 * np.sin(i), gain=0.85 + 0.03 * (i % 5), quality=70)
        for i in range(frames)
    ]
    return write_video(path, clip)


# --- 3D head movements --------------------------------------------------------------------------
# A genuine head turn is rendered from one photo with parallax: each landmark gets a generic depth,
# the points are rotated in 3D about a pivot behind the face and projected back, and every triangle
# of the photo is warped to its new place. Attacks are the same photos moved as flat sheets, or held still.

CHALLENGE_STEP = {"left": (1, 0), "right": (-1, 0), "up": (0, 1), "down": (0, -1)}  # (yaw, pitch) signs
# The person's own left moves the nose to the right of the raw (unmirrored) image: +yaw; head back: +pitch.

# Depth in front of the ear plane, in units of half the jaw width (about 7 cm on an adult): the nose tip
# ends ~0.5 in front of the outer eye corners (3.5 cm) and ~0.35 in front of the mouth corners.
_NOSE_BUMP = {27: 0.08, 28: 0.13, 29: 0.19, 30: 0.25, 31: 0.08, 32: 0.12, 33: 0.15, 34: 0.12, 35: 0.08}
_EYE_RECESS = dict.fromkeys(range(36, 48), -0.05)


class HeadModel:
    """One photo's face as 3D points and triangles, ready to be rendered at any yaw and pitch."""

    def __init__(self, bgr):
        """Detect the face (taken near frontal) and give its points generic depths."""
        rgb = faces.frame_to_rgb(bgr)
        check = faces.find_single_face(rgb)
        assert check.box, check.problem
        lm = faces.face_landmarks(rgb, check.box)
        h, w = bgr.shape[:2]
        a = np.linalg.norm(lm[16] - lm[0]) / 2  # half the jaw width: the unit of depth
        up = (lm[27] - lm[8]) / np.linalg.norm(lm[27] - lm[8])
        face_h = np.linalg.norm(lm[27] - lm[8])
        centre = (lm[0] + lm[16]) / 2
        # Forehead and hairline above the brows: the face surface continues up and curves back.
        brows = lm[17:27]
        forehead = np.vstack([brows + up * 0.3 * face_h, brows[::3] + up * 0.6 * face_h])
        # Just outside the jaw line: the face's edge moves with the face, the neck below stretches.
        edge = centre + (lm[0:17] - centre) * 1.12
        face_pts = np.vstack([lm, forehead, edge])
        side = np.array([-up[1], up[0]])  # across the face
        dx = (face_pts - centre) @ side / a
        dy = (face_pts - centre) @ -up / face_h
        z = 0.75 * np.sqrt(np.clip(1 - dx**2, 0, 1)) - 0.08 * dy**2
        for i, bump in {**_NOSE_BUMP, **_EYE_RECESS}.items():
            z[i] += bump
        z[68:-17] -= 0.1 * np.clip(-dy[68:-17], 0, None)  # the forehead slopes back
        z[-17:] = z[0:17] - 0.1
        # The head's outline (hair, ears, neck) and the room stay put: a head rotates inside its outline.
        ring_c = centre + up * 0.15 * face_h
        t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        ring = ring_c + np.outer(np.cos(t), side) * 1.45 * a + np.outer(np.sin(t), up) * 1.05 * face_h
        far = ring_c + np.outer(np.cos(t[::2]), side) * 2.6 * a + np.outer(np.sin(t[::2]), up) * 1.9 * face_h
        border = np.array(
            [
                (x, y)
                for x in np.linspace(0, w - 1, 5)
                for y in np.linspace(0, h - 1, 5)
                if x in (0, w - 1) or y in (0, h - 1)
            ],
            dtype=np.float64,
        )
        fixed = np.vstack([ring, far, border])
        fixed[:, 0] = fixed[:, 0].clip(0, w - 1)
        fixed[:, 1] = fixed[:, 1].clip(0, h - 1)
        self.image, self.landmarks, self.unit = bgr, lm, a
        self.points = np.vstack([face_pts, fixed])
        self.moving = len(face_pts)
        self.depth = np.concatenate([z * a, np.zeros(len(fixed))])
        # Pivot ~10 cm behind the nose tip at mouth level: the neck joints a head turns and tilts on.
        self.pivot = np.array([centre[0], (lm[51][1] + lm[57][1]) / 2, (z[30] - 1.4) * a])
        self.triangles = _delaunay(self.points, w, h)

    def project(self, yaw, pitch):
        """Return the 2D image positions and depths of every point after turning the head."""
        ya, pi = np.radians(yaw), np.radians(pitch)
        # Image axes: x right, y down, z towards the camera. +yaw takes the nose to +x,
        # +pitch takes it up (-y).
        ry = np.array([[np.cos(ya), 0, np.sin(ya)], [0, 1, 0], [-np.sin(ya), 0, np.cos(ya)]])
        rx = np.array([[1, 0, 0], [0, np.cos(pi), -np.sin(pi)], [0, np.sin(pi), np.cos(pi)]])
        p = np.column_stack([self.points, self.depth])
        moved = (p[: self.moving] - self.pivot) @ (ry @ rx).T + self.pivot
        out = p.copy()
        out[: self.moving] = moved
        return out[:, :2], out[:, 2]


def _delaunay(points, w, h):
    """Return the Delaunay triangles of `points` as index triples."""
    from scipy.spatial import Delaunay

    return Delaunay(points).simplices


def render_head(bgr, yaw, pitch, model=None):
    """Return a BGR photo with its face turned by `yaw` and tilted by `pitch` degrees, with parallax."""
    model = model or HeadModel(bgr)
    dst, depth = model.project(yaw, pitch)
    src = model.points
    out = model.image.copy()
    tri_depth = depth[model.triangles].mean(axis=1)
    for tri in model.triangles[np.argsort(tri_depth)]:  # far triangles first: the nose covers the cheek
        s, d = src[tri].astype(np.float32), dst[tri].astype(np.float32)
        (ax, ay), (bx, by) = s[1] - s[0], s[2] - s[0]
        (cx, cy), (ex, ey) = d[1] - d[0], d[2] - d[0]
        area_s, area_d = ax * by - ay * bx, cx * ey - cy * ex
        if area_s * area_d <= 0:
            continue  # turned away from the camera
        x0, y0 = np.floor(d.min(axis=0)).astype(int)
        x1, y1 = np.ceil(d.max(axis=0)).astype(int) + 1
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, out.shape[1]), min(y1, out.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        m = cv2.getAffineTransform(s, (d - (x0, y0)).astype(np.float32))
        patch = cv2.warpAffine(
            model.image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round(d - (x0, y0)).astype(np.int32), 1)
        region = out[y0:y1, x0:x1]
        region[mask > 0] = patch[mask > 0]
    return out


def camera(frames, seed=0, noise=3.0, quality=75, gain=(0.85, 1.1), shake=1.0):
    """Return frames as a webcam gives them: a little hand shake, drifting light, sensor noise, JPEG loss."""
    rng = np.random.default_rng(seed)
    out, n = [], len(frames)
    g0, g1 = rng.uniform(*gain), rng.uniform(*gain)
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        dx, dy = rng.normal(0, shake, 2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        f = cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        f = f * (g0 + (g1 - g0) * i / max(n - 1, 1)) + rng.normal(0, noise, f.shape)
        ok, buf = cv2.imencode(".jpg", np.clip(f, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR))
    return out


def movement_path(degrees, hold=8, turn=14, peak=8, back=12):
    """Return per-frame angles of a movement: still, an eased turn to `degrees`, a hold, and most of the way back."""
    ease = (1 - np.cos(np.linspace(0, np.pi, turn))) / 2
    ret = 1 - 0.8 * (1 - np.cos(np.linspace(0, np.pi, back))) / 2
    return np.concatenate([np.zeros(hold), degrees * ease, np.full(peak, float(degrees)), degrees * ret])


def turn_clip(
    bgr, direction, degrees=20, seed=0, noise=3.0, quality=75, gain=(0.85, 1.1), jitter=0.7, base=(0.0, 0.0), **path
):
    """A ~1.4 s, 30 fps clip (BGR frames) of the person in `bgr` turning or tilting their head `direction`.

    `base` (yaw, pitch) is added to every frame's pose.
    """
    rng = np.random.default_rng(seed + 1000)
    model = HeadModel(bgr)
    sy, sp = CHALLENGE_STEP[direction]
    frames = [
        render_head(bgr, base[0] + sy * a + rng.normal(0, jitter), base[1] + sp * a + rng.normal(0, jitter), model)
        for a in movement_path(degrees, **path)
    ]
    return camera(frames, seed, noise, quality, gain)


def sheet(bgr, yaw=0.0, pitch=0.0, distance=1.0):
    """Return the picture as a flat sheet turned by `yaw` and tilted by `pitch` degrees before a camera."""
    h, w = bgr.shape[:2]
    f = float(w)  # a webcam's focal length is about its image width
    ya, pi = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(ya), 0, np.sin(ya)], [0, 1, 0], [-np.sin(ya), 0, np.cos(ya)]])
    rx = np.array([[1, 0, 0], [0, np.cos(pi), -np.sin(pi)], [0, np.sin(pi), np.cos(pi)]])
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    p = np.column_stack([corners - (w / 2, h / 2), np.zeros(4)]) @ (ry @ rx).T
    p[:, 2] = distance * f - p[:, 2]  # z towards the camera becomes distance away from it
    image = f * p[:, :2] / p[:, 2:] + (w / 2, h / 2)
    hm = cv2.getPerspectiveTransform(corners, image.astype(np.float32))
    return cv2.warpPerspective(bgr, hm, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(60, 60, 60))


def flat_clip(bgr, direction, degrees=30, seed=0, noise=3.0, quality=75, gain=(0.85, 1.1), jitter=0.7, **path):
    """A clip of the photo held up as a flat sheet and turned or tilted `direction` by `degrees`."""
    rng = np.random.default_rng(seed + 2000)
    sy, sp = CHALLENGE_STEP[direction]
    frames = [
        sheet(bgr, sy * a + rng.normal(0, jitter), sp * a + rng.normal(0, jitter))
        for a in movement_path(degrees, **path)
    ]
    return camera(frames, seed, noise, quality, gain)


def still_clip(bgr, frames=45, seed=0, noise=3.0, quality=75, gain=(0.85, 1.1)):
    """A clip of a still photo held before the camera: only hand shake, light, noise and JPEG change."""
    return camera([bgr] * frames, seed, noise, quality, gain, shake=1.5)


def blink_clip(bgr, frames=45, seed=0, noise=3.0, quality=75, gain=(0.85, 1.1)):
    """A still photo whose eyes are painted shut for a few frames (the blink attack) and open again."""
    shut = close_eyes(bgr)
    return camera([shut if i in BLINK_AT else bgr for i in range(frames)], seed, noise, quality, gain, shake=1.5)


def swap_clip(bgr_a, bgr_b, direction, degrees=20, seed=0, at=15, **kw):
    """A clip of person A starting a movement that person B finishes: the face changes at frame `at`."""
    a = turn_clip(bgr_a, direction, degrees, seed, **kw)
    b = turn_clip(bgr_b, direction, degrees, seed, **kw)
    return a[:at] + b[at:]


# --- light and enrolment quality ----------------------------------------------------------------


def letterbox(image, size=(1280, 480)):
    """Return a portrait photo filling the height of a wide frame between black side bars."""
    return on_canvas(image, size, size[1], background=(0, 0, 0))


def on_stage(image):
    """Return a well-lit photo in the middle of a black frame, as a face before a dark wall or on a stage."""
    return on_canvas(image, height=300, background=(0, 0, 0))


def blur_face(image, sigma):
    """Blur a photo so its face looks `sigma` px out of focus at the 150 px scale dlib encodes faces at."""
    rgb = faces.frame_to_rgb(image)
    box = faces.find_single_face(rgb, detect_width=1024).box
    return cv2.GaussianBlur(image, (0, 0), sigma * faces.box_height(box) / 150)


def shade_half(image, gain=0.3):
    """Darken the left half of a photo's face (and everything left of it), as a lamp from one side."""
    rgb = faces.frame_to_rgb(image)
    top, right, bottom, left = faces.find_single_face(rgb, detect_width=1024).box
    out = image.astype(np.float32)
    out[:, : (left + right) // 2] *= gain
    return out.astype(np.uint8)


# --- hostile uploads: the heaviest pictures under the byte limit ---------------------------------------


def encode(image, fmt, **params):
    """Encode a Pillow image (or an RGB array) in `fmt` with Pillow's `params`; return the bytes."""
    buf = io.BytesIO()
    (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(buf, format=fmt, **params)
    return buf.getvalue()


def float_tiff(side=6300):
    """A one-colour float TIFF `side` pixels square, as the penetration test posted (6300: 264 KB here)."""
    return encode(Image.new("F", (side, side), 0.5), "TIFF", compression="tiff_adobe_deflate")


def png16(side, channels=1):
    """A one-colour 16-bit PNG `side` pixels square: grey, or RGBA with `channels=4` (6300 grey: 92 KB)."""
    if channels == 1:
        return encode(Image.new("I;16", (side, side), 30000), "PNG")
    ok, buf = cv2.imencode(".png", np.full((side, side, channels), 30000, np.uint16))
    return buf.tobytes()


def photo_bomb(path, pixels, fmt="JPEG", **params):
    """A real face photo enlarged to about `pixels` pixels and encoded in `fmt`: big in memory, small on the wire."""
    rgb = cv2.cvtColor(load_bgr(path), cv2.COLOR_BGR2RGB)
    scale = np.sqrt(pixels / (rgb.shape[0] * rgb.shape[1]))
    size = (int(rgb.shape[1] * scale), int(rgb.shape[0] * scale))
    return encode(cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR), fmt, **params)


def webcam_frames(path, count=60, size=(1920, 1440), quality=70):
    """`count` JPEG frames of a person standing still, enlarged to the largest size a kiosk browser may post."""
    frames = still_clip(on_canvas(load_bgr(path)), frames=count)
    return [cv2.imencode(".jpg", cv2.resize(f, size), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for f in frames]
