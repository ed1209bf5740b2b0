"""Command-line tools: `flask faces ...` for the face gallery, `flask users ...` for accounts."""

from flask.cli import AppGroup

faces_cli = AppGroup("faces", help="Measure, check and import face templates.")
users_cli = AppGroup("users", help="Manage kiosk accounts.")


def init_app(app):
    """Register the command groups."""
    app.cli.add_command(faces_cli)
    app.cli.add_command(users_cli)
