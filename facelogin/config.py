"""Every setting's default and every check of a setting, in one place, run when the app starts.

Settings come from these defaults, then FLASK_* environment variables
(`app.config.from_prefixed_env()`), then the test dict; `check` then refuses a
misspelt or unsafe value at start-up instead of letting it quietly weaken the login.
"""

import os

from facelogin.engine import limits, templates

LOGIN_MODES = ("face", "username+face", "face+password")
LIVENESS_MODES = ("challenge", "blink", "off")
CAMERA_MODES = ("server", "browser")
KEY_HELP = (
    "generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def defaults(app):
    """Return the default settings; paths are relative to the app's folders."""
    return dict(
        SECRET_KEY=None,  # None: generated once into instance/secret_key
        SQLALCHEMY_DATABASE_URI="sqlite:///" + os.path.join(app.instance_path, "kiosk.sqlite"),
        UPLOAD_FOLDER=os.path.join(app.root_path, "uploads"),
        KNOWN_FACES_FOLDER=os.path.join(app.root_path, "known_faces"),
        KEEP_UPLOADS=False,
        CAMERA_SOURCE=0,
        CAMERA_MODE="server",  # or "browser": the kiosk browser takes the pictures
        CAMERA_FRAMES=10,
        CAMERA_TIMEOUT=5.0,
        FACE_TOLERANCE=0.45,
        FACE_MARGIN=0.08,
        FACE_CONSENSUS=2,
        LIVENESS="challenge",  # or "blink" (a blink in LIVENESS_FRAMES) or "off" (a photo logs in)
        LIVENESS_FRAMES=60,  # 2 s at 30 fps, 4 s at 15 fps; CAMERA_TIMEOUT still caps it
        BLINK_RATIO=0.65,  # closed: openness below this share of the open-eye median
        BLINK_MIN_FRAMES=2,
        BLINK_MAX_FRAMES=12,  # 2-12 closed frames: about 70-400 ms at 30 fps
        CHALLENGE_FRAMES=90,  # frames watched for the head movement: 3 s at 30 fps
        CHALLENGE_SECONDS=4.0,  # the most time the movement may take, whatever the frame rate
        # The bars of the movement (engine/liveness.py explains each; README "Liveness" has the measures):
        CHALLENGE_MIN_YAW=10.0,  # degrees of turn from the start pose (a real 20 degree turn reads 14-17)
        CHALLENGE_MIN_PITCH=8.0,  # degrees of tilt (a real 15 degree tilt reads 9-14)
        CHALLENGE_MIN_DEPTH=0.025,  # the nose landmarks' parallax on a turn, in eye distances
        CHALLENGE_MIN_DEPTH_PITCH=0.04,  # the same on a tilt
        CHALLENGE_MIN_TEXTURE=0.008,  # the nose texture's parallax, in eye distances (flat sheets: < 0.004)
        LOGIN_MODE="face",  # or "username+face" (1:1) or "face+password"
        MAX_TEMPLATES=5,
        LOCKOUT_AFTER=5,
        LOCKOUT_SECONDS=30,
        FACE_DISABLE_AFTER=50,
        FACE_RATE_LIMIT=10,
        FACE_RATE_WINDOW=60,
        SAVE_FAILED_SNAPSHOTS=False,
        SNAPSHOT_RETENTION_DAYS=7,
        MIN_FACE_HEIGHT=80,
        DETECT_WIDTH=320,
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
        # Photos: more pixels than this (read from the header, before decoding) is refused, fewer for PNG
        # and WebP (faces.pixel_limit); decoding one then peaks near 100 MiB. A 12 MP phone photo passes.
        MAX_IMAGE_PIXELS=16_000_000,
        PHOTO_WORK_PIXELS=4_000_000,  # photos are shrunk to this while decoding: detection runs 1024 px wide
        MAX_CONCURRENT_DECODES=2,  # requests decoding and analysing pictures at once (2 cores); as many wait...
        DECODE_WAIT_SECONDS=5.0,  # ...this long at most; the rest hear "busy, try again" (503) at once
        PASSWORD_HASH_METHOD="scrypt:131072:8:1",
        KIOSK_IDLE_SECONDS=120,
        KIOSK_ENROL_MINUTES=15,  # how long a `flask kiosks add` link stays valid
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        WTF_CSRF_ENABLED=True,
        FACE_TEMPLATE_KEY=None,  # Fernet key(s), newest first: templates encrypted at rest
    )


def challenge_bars(cfg):
    """Return the challenge settings as the keyword arguments of liveness.watch_for_challenge."""
    return {
        "min_yaw": cfg["CHALLENGE_MIN_YAW"],
        "min_pitch": cfg["CHALLENGE_MIN_PITCH"],
        "min_depth": cfg["CHALLENGE_MIN_DEPTH"],
        "min_depth_pitch": cfg["CHALLENGE_MIN_DEPTH_PITCH"],
        "min_texture": cfg["CHALLENGE_MIN_TEXTURE"],
        "min_face_height": cfg["MIN_FACE_HEIGHT"],
        "detect_width": cfg["DETECT_WIDTH"],
    }


def decode_slots(cfg):
    """Return the process-wide slots for decoding and analysing pictures (engine/limits.py)."""
    return limits.Slots(cfg["MAX_CONCURRENT_DECODES"], cfg["DECODE_WAIT_SECONDS"])


def photo_limits(cfg):
    """Return the photo settings as the keyword arguments of faces.read_image."""
    return {"max_pixels": cfg["MAX_IMAGE_PIXELS"], "work_pixels": cfg["PHOTO_WORK_PIXELS"]}


def _one_of(app, key, allowed):
    """Refuse a value of `key` that is not one of `allowed`."""
    if app.config[key] not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {app.config[key]!r}")


def check(app):
    """Refuse to start with a setting that is misspelt, out of range or unsafe; warn about weak ones."""
    cfg = app.config
    _one_of(app, "LOGIN_MODE", LOGIN_MODES)
    _one_of(app, "LIVENESS", LIVENESS_MODES)
    _one_of(app, "CAMERA_MODE", CAMERA_MODES)
    for key in (
        "CAMERA_FRAMES",
        "LIVENESS_FRAMES",
        "CHALLENGE_FRAMES",
        "FACE_CONSENSUS",
        "MAX_TEMPLATES",
        "LOCKOUT_AFTER",
        "FACE_DISABLE_AFTER",
        "FACE_RATE_LIMIT",
        "MIN_FACE_HEIGHT",
        "MAX_IMAGE_PIXELS",
        "PHOTO_WORK_PIXELS",
        "MAX_CONCURRENT_DECODES",
    ):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"{key} must be a whole number of at least 1, not {cfg[key]!r}")
    for key in (
        "FACE_TOLERANCE",
        "CAMERA_TIMEOUT",
        "CHALLENGE_SECONDS",
        "KIOSK_IDLE_SECONDS",
        "CHALLENGE_MIN_YAW",
        "CHALLENGE_MIN_PITCH",
        "CHALLENGE_MIN_DEPTH",
        "CHALLENGE_MIN_DEPTH_PITCH",
        "CHALLENGE_MIN_TEXTURE",
        "DECODE_WAIT_SECONDS",
    ):
        if not isinstance(cfg[key], int | float) or cfg[key] <= 0:
            raise ValueError(f"{key} must be a positive number, not {cfg[key]!r}")
    try:
        templates.cipher_for(cfg["FACE_TEMPLATE_KEY"])
    except (ValueError, TypeError) as e:
        raise ValueError(f"FACE_TEMPLATE_KEY is not a valid Fernet key: {KEY_HELP}") from e
    if cfg["LIVENESS"] == "off":
        app.logger.warning(
            "LIVENESS=off: a photo of an enrolled person logs in as them. "
            "Use LIVENESS=challenge (the default) on any kiosk people can walk up to."
        )
