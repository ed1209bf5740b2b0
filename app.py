"""The kiosk face-login app: `flask` finds `create_app` here."""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

import account
import admin
import auth
import cli
import errors
import gallery
import kiosk
import login
import security
from models import check_template_key, db

migrate = Migrate()
csrf = CSRFProtect()


def create_app(test_config=None):
    """Create and configure the app: defaults, then FLASK_* variables, then `test_config`."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
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
        LIVENESS="off",  # or "blink": a blink within LIVENESS_FRAMES (see liveness.py)
        LIVENESS_FRAMES=60,  # 2 s at 30 fps, 4 s at 15 fps; CAMERA_TIMEOUT still caps it
        BLINK_RATIO=0.65,  # closed: openness below this share of the open-eye median
        BLINK_MIN_FRAMES=2,
        BLINK_MAX_FRAMES=12,  # 2-12 closed frames: about 70-400 ms at 30 fps
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
        MAX_IMAGE_PIXELS=40_000_000,
        PASSWORD_HASH_METHOD="scrypt:131072:8:1",
        KIOSK_IDLE_SECONDS=120,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        WTF_CSRF_ENABLED=True,
        FACE_TEMPLATE_KEY=None,  # Fernet key(s), newest first: templates encrypted at rest
    )
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.update(test_config)
    for folder in (app.instance_path, app.config["UPLOAD_FOLDER"], app.config["KNOWN_FACES_FOLDER"]):
        os.makedirs(folder, exist_ok=True)

    register_extensions(app)
    register_blueprints(app)
    return app


def register_extensions(app):
    """Attach the database, migrations, CSRF, security hooks, the face gallery, errors and commands."""
    db.init_app(app)
    check_template_key(app)
    # Batch migrations rebuild SQLite tables, which drops the expression index on
    # usernames: additive changes use recreate="never" (see revision 0002).
    migrate.init_app(app, db, render_as_batch=True)
    csrf.init_app(app)
    security.init_app(app)
    gallery.init_app(app)
    login.init_app(app)
    errors.init_app(app)
    cli.init_app(app)


def register_blueprints(app):
    """Attach the pages."""
    app.register_blueprint(auth.bp)
    app.register_blueprint(account.bp)
    kiosk.init_app(app)
    admin.init_app(app)
