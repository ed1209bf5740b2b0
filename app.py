"""The kiosk face-login app: `flask` finds `create_app` here."""

import os

from flask import Flask
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

import auth
import cli
import errors
import gallery
import security
from models import db

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
        CAMERA_FRAMES=10,
        CAMERA_TIMEOUT=5.0,
        FACE_TOLERANCE=0.45,
        FACE_MARGIN=0.08,
        FACE_CONSENSUS=2,
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
    )
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.update(test_config)
    for folder in (app.instance_path, app.config["UPLOAD_FOLDER"], app.config["KNOWN_FACES_FOLDER"]):
        os.makedirs(folder, exist_ok=True)

    db.init_app(app)
    # Batch migrations rebuild SQLite tables, which drops the expression index on
    # usernames: additive changes use recreate="never" (see revision 0002).
    migrate.init_app(app, db, render_as_batch=True)
    csrf.init_app(app)
    security.init_app(app)
    gallery.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    app.register_blueprint(auth.bp)
    return app
