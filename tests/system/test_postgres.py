"""PostgreSQL: the migrations, registration and both logins on a real server (see pg_cluster.py)."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from models import User, db


@pytest.fixture
def app(make_app, postgres_url):
    """The test app on a new PostgreSQL database built by `flask db upgrade`."""
    app = make_app(SQLALCHEMY_DATABASE_URI=postgres_url)
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    yield app
    with app.app_context():
        db.engine.dispose()


def test_upgrade_builds_the_models_schema_with_the_lowercase_index(app, runner):
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
        (index,) = [i for i in inspect(db.engine).get_indexes("users") if i["name"] == "uq_user_username_lower"]
        assert index["unique"] and "lower" in index["expressions"][0]
    # The downgrades run on PostgreSQL too, and the schema comes back.
    assert runner.invoke(args=["db", "downgrade", "base"]).exit_code == 0
    with app.app_context():
        assert "users" not in inspect(db.engine).get_table_names()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0


def test_register_then_face_and_password_login(app, kiosk, media, photos):
    assert kiosk.register("Grace", photos["grace"]).headers["Location"] == "/login"
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().headers["Location"] == "/protected"
    assert b"Hello, Grace" in kiosk.client.get("/protected").data
    kiosk.client.post("/logout")
    assert kiosk.password_login("grace", "correct horse").headers["Location"] == "/protected"
    kiosk.look(media["luis_video"])
    assert kiosk.face_login().status_code == 401
    with app.app_context():
        grace = User.by_username("GRACE")
        assert grace.last_login_at.tzinfo is not None  # timestamptz round-trips as aware
        assert len(grace.face_encodings[0]) == 128


def test_usernames_are_unique_ignoring_case(app, kiosk, photos, user_count):
    kiosk.register("Grace", photos["grace"])
    response = kiosk.register("gRACE", photos["luis"])
    assert response.status_code == 409 and b"username is taken" in response.data
    with app.app_context(), db.engine.connect() as conn:
        insert = text(
            "INSERT INTO users (username, password_hash, face_encodings, created_at,"
            " faces_updated_at) VALUES (:u, 'x', '\\x00', now(), now())"
        )
        with pytest.raises(IntegrityError, match="uq_user_username_lower"):
            conn.execute(insert, {"u": "GRACE"})
    assert user_count() == 1
