"""The kiosk face-login app: `flask` finds `create_app` here."""

from flask import Flask

from facelogin import commands, config
from facelogin.extensions import csrf, migrate
from facelogin.services import consent, gallery, health, sessions, storage
from facelogin.views import account, admin, camera, errors, kiosks, login, register
from models import check_template_key, db

BLUEPRINTS = (login.bp, register.bp, account.bp, admin.bp, camera.bp, kiosks.bp, errors.bp)


def create_app(test_config=None):
    """Create and configure the app: defaults, then FLASK_* variables, then `test_config`."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config.defaults(app))
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.update(test_config)
    config.check(app)
    storage.init_app(app)  # before the database connects: it creates the SQLite file 0600

    db.init_app(app)
    check_template_key(app)
    # Batch migrations rebuild SQLite tables, which drops the expression index on
    # usernames: additive changes use recreate="never" (see revision 0002).
    migrate.init_app(app, db, render_as_batch=True)
    csrf.init_app(app)
    sessions.init_app(app)
    gallery.init_app(app)
    health.init_app(app)
    commands.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    consent.check(app)  # the notice's version is read from its template, which an operator edits
    return app
