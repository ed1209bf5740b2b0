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
REGISTRATION_MODES = ("open", "staff", "closed")
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
        # PostgreSQL: the app's processes hear of face changes on a LISTEN connection (services/gallery.py).
        # Behind a transaction-pooling PgBouncer, which cannot LISTEN, give a direct URL to the server here.
        GALLERY_LISTEN_URL=None,
        KEEP_UPLOADS=False,
        CAPTURE_KEEP_SECONDS=600,  # an unconfirmed kiosk-camera photo is deleted after this
        CAMERA_SOURCE=0,
        CAMERA_MODE="server",  # or "browser": the kiosk browser takes the pictures
        CAMERA_FRAMES=10,
        CAMERA_TIMEOUT=5.0,
        FACE_TOLERANCE=0.55,
        FACE_MARGIN=0.08,
        FACE_CONSENSUS=2,
        # The 1:N guard (services/health.py): above this estimated chance that a stranger matches
        # somebody enrolled, face-only login tightens its tolerance, or asks for the username when
        # that would go below FACE_GUARD_FLOOR (README "The operating point of this gallery").
        FACE_MAX_FPIR=0.01,
        FACE_GUARD_FLOOR=0.4,
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
        # Who may register: "open" (anyone), "staff" (only while an admin is logged in, so nobody
        # can enrol with someone else's photo first) or "closed" (`flask faces import` only).
        REGISTRATION="open",
        MAX_TEMPLATES=5,
        # Learned templates (services/learning.py): a live login this sure refreshes the oldest of
        # LEARN_SLOTS templates kept beside the enrolled ones (README "Learned templates" has the measures).
        LEARN_TEMPLATES=True,
        LEARN_MAX_DISTANCE=0.35,  # to the closest template AND the enrolment; at most FACE_TOLERANCE - FACE_MARGIN
        LEARN_MIN_MARGIN=0.15,  # lead over the next user in the whole gallery (never below FACE_MARGIN)
        LEARN_SLOTS=2,
        LOCKOUT_AFTER=5,
        LOCKOUT_SECONDS=30,
        FACE_DISABLE_AFTER=50,
        FACE_RATE_LIMIT=10,
        FACE_RATE_WINDOW=60,
        # Limits count failures (a success gives its slot back) and are claimed before the check:
        PASSWORD_RATE_LIMIT=10,  # wrong passwords per address per PASSWORD_RATE_WINDOW seconds
        PASSWORD_RATE_WINDOW=60,
        PASSWORD_GLOBAL_LIMIT=120,  # wrong passwords from all addresses together per window
        PASSWORD_HASH_CONCURRENCY=2,  # password hashes at once per process (each scrypt takes 128 MiB)
        PASSWORD_HASH_WAIT=5.0,  # seconds a request waits for a hashing slot before "busy" (503)
        REGISTER_RATE_LIMIT=10,  # refused registrations per address per REGISTER_RATE_WINDOW seconds
        REGISTER_RATE_WINDOW=600,
        SAVE_FAILED_SNAPSHOTS=False,
        SNAPSHOT_RETENTION_DAYS=7,
        # Face data (templates, face photo, thumbnails) of an account with no login for this many days
        # is deleted by `flask faces purge` (services/privacy.py); the account stays. 0 keeps it for ever.
        # The consent notice (templates/_consent_notice.html) tells people this period.
        FACE_RETENTION_DAYS=365,
        MIN_FACE_HEIGHT=80,
        # The enrolment quality gate (engine/quality.py; login frames are never gated). Measured on the
        # fixture photos: the good ones, a 30-degree three-quarter view among them, pass; blurred,
        # further-turned, eyes-shut and half-shadowed copies fail. A minimum of 0 turns that check off.
        ENROL_MAX_YAW=0.85,  # nose offset from the jaw's middle, in half jaw widths (fixtures: up to 0.66)
        ENROL_MAX_PITCH=0.17,  # nose height off a frontal face's, in eye-to-chin heights (fixtures: up to 0.11)
        ENROL_MIN_SHARPNESS=0.6,  # share of the face's detail a 1 px blur removes (fixtures: 0.70+; blurred: ~0.55)
        ENROL_MIN_OPENNESS=0.2,  # eye openness, liveness.openness (fixtures: 0.33+; painted shut: 0.10-0.13)
        ENROL_MIN_EVEN_LIGHT=0.5,  # darker half of the face over the brighter half (fixtures: 0.78+)
        ENROL_JITTERS=1,  # re-samplings averaged per enrolment encoding (num_jitters); login frames use 1
        DETECT_WIDTH=320,
        STREAM_LIMIT=2,  # live camera views at once per process: each holds a server worker while it lasts
        STREAM_SECONDS=300,  # the longest one live view lasts; the page then opens a new one (kiosk.js)
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
        # Photos: more pixels than this (read from the header, before decoding) is refused, fewer for PNG
        # and WebP (faces.pixel_limit); decoding one then peaks near 100 MiB. A 12 MP phone photo passes.
        MAX_IMAGE_PIXELS=16_000_000,
        PHOTO_WORK_PIXELS=4_000_000,  # photos are shrunk to this while decoding: detection runs 1024 px wide
        MAX_CONCURRENT_DECODES=2,  # requests decoding and analysing pictures at once (2 cores); as many wait...
        DECODE_WAIT_SECONDS=5.0,  # ...this long at most; the rest hear "busy, try again" (503) at once
        SERVE_CHANNEL_TIMEOUT=20,  # serve.py: seconds an idle or stalled connection stays open
        SERVE_CONNECTION_LIMIT=1000,  # serve.py: open connections at once, so that slow ones cannot fill it
        PASSWORD_HASH_METHOD="scrypt:131072:8:1",
        KIOSK_IDLE_SECONDS=120,
        # The login page starts a face login by itself once one face holds still in the guide oval.
        KIOSK_HANDS_FREE=True,
        SESSION_MAX_HOURS=12,  # a session ends this long after its login, however active
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


def learning_bars(cfg):
    """Return the learning bars as the keyword arguments of faces.should_learn, never looser than the login's."""
    # A tolerance or margin tightened without touching these keeps learning a margin inside the login's bars.
    return {
        "max_distance": min(cfg["LEARN_MAX_DISTANCE"], cfg["FACE_TOLERANCE"] - cfg["FACE_MARGIN"]),
        "min_margin": max(cfg["LEARN_MIN_MARGIN"], cfg["FACE_MARGIN"]),
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


def _check_learning(cfg):
    """Refuse switches that are not true or false, and more learning slots than a user can hold."""
    for key in ("LEARN_TEMPLATES", "KIOSK_HANDS_FREE"):
        if not isinstance(cfg[key], bool):
            raise ValueError(f"{key} must be true or false, not {cfg[key]!r}")
    if cfg["LEARN_SLOTS"] > templates.MAX_STORED_TEMPLATES:
        raise ValueError(f"LEARN_SLOTS must be at most {templates.MAX_STORED_TEMPLATES}")


def check(app):
    """Refuse to start with a setting that is misspelt, out of range or unsafe; warn about weak ones."""
    cfg = app.config
    _one_of(app, "LOGIN_MODE", LOGIN_MODES)
    _one_of(app, "LIVENESS", LIVENESS_MODES)
    _one_of(app, "CAMERA_MODE", CAMERA_MODES)
    _one_of(app, "REGISTRATION", REGISTRATION_MODES)
    for key in (
        "CAMERA_FRAMES",
        "LIVENESS_FRAMES",
        "CHALLENGE_FRAMES",
        "FACE_CONSENSUS",
        "MAX_TEMPLATES",
        "LEARN_SLOTS",
        "LOCKOUT_AFTER",
        "FACE_DISABLE_AFTER",
        "FACE_RATE_LIMIT",
        "FACE_RATE_WINDOW",
        "PASSWORD_RATE_LIMIT",
        "PASSWORD_RATE_WINDOW",
        "PASSWORD_GLOBAL_LIMIT",
        "PASSWORD_HASH_CONCURRENCY",
        "REGISTER_RATE_LIMIT",
        "REGISTER_RATE_WINDOW",
        "MIN_FACE_HEIGHT",
        "ENROL_JITTERS",
        "STREAM_LIMIT",
        "SERVE_CHANNEL_TIMEOUT",
        "SERVE_CONNECTION_LIMIT",
        "MAX_IMAGE_PIXELS",
        "PHOTO_WORK_PIXELS",
        "MAX_CONCURRENT_DECODES",
    ):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"{key} must be a whole number of at least 1, not {cfg[key]!r}")
    for key in (
        "FACE_TOLERANCE",
        "CAMERA_TIMEOUT",
        "PASSWORD_HASH_WAIT",
        "CHALLENGE_SECONDS",
        "KIOSK_IDLE_SECONDS",
        "STREAM_SECONDS",
        "CAPTURE_KEEP_SECONDS",
        "SESSION_MAX_HOURS",
        "CHALLENGE_MIN_YAW",
        "CHALLENGE_MIN_PITCH",
        "CHALLENGE_MIN_DEPTH",
        "CHALLENGE_MIN_DEPTH_PITCH",
        "CHALLENGE_MIN_TEXTURE",
        "ENROL_MAX_YAW",
        "ENROL_MAX_PITCH",
        "LEARN_MAX_DISTANCE",
        "LEARN_MIN_MARGIN",
        "DECODE_WAIT_SECONDS",
    ):
        if not isinstance(cfg[key], int | float) or cfg[key] <= 0:
            raise ValueError(f"{key} must be a positive number, not {cfg[key]!r}")
    days = cfg["FACE_RETENTION_DAYS"]
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise ValueError(f"FACE_RETENTION_DAYS must be a whole number of days, 0 to keep, not {days!r}")
    for key in ("ENROL_MIN_SHARPNESS", "ENROL_MIN_OPENNESS", "ENROL_MIN_EVEN_LIGHT"):  # 0: that check is off
        if not isinstance(cfg[key], int | float) or cfg[key] < 0:
            raise ValueError(f"{key} must be a number of at least 0, not {cfg[key]!r}")
    if not isinstance(cfg["FACE_MAX_FPIR"], int | float) or not 0 < cfg["FACE_MAX_FPIR"] <= 0.1:
        raise ValueError(f"FACE_MAX_FPIR must be above 0 and at most 0.1, not {cfg['FACE_MAX_FPIR']!r}")
    if not isinstance(cfg["FACE_GUARD_FLOOR"], int | float) or not 0 <= cfg["FACE_GUARD_FLOOR"] <= 1:
        raise ValueError(f"FACE_GUARD_FLOOR must be a distance from 0 to 1, not {cfg['FACE_GUARD_FLOOR']!r}")
    _check_learning(cfg)
    try:
        templates.cipher_for(cfg["FACE_TEMPLATE_KEY"])
    except (ValueError, TypeError) as e:
        raise ValueError(f"FACE_TEMPLATE_KEY is not a valid Fernet key: {KEY_HELP}") from e
    if cfg["LIVENESS"] == "off":
        app.logger.warning(
            "LIVENESS=off: a photo of an enrolled person logs in as them. "
            "Use LIVENESS=challenge (the default) on any kiosk people can walk up to."
        )
