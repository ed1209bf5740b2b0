"""The committed migrations build the schema, and it matches the models."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from models import db


def test_upgrade_on_empty_database_matches_models(tmp_path, media):
    from app import create_app

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "t",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.sqlite'}",
            "UPLOAD_FOLDER": str(tmp_path / "u"),
            "KNOWN_FACES_FOLDER": str(tmp_path / "k"),
        }
    )
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        inspector = inspect(db.engine)
        assert "users" in inspector.get_table_names()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
            assert diff == []
            # SQLite cannot reflect the expression index, so prove it by behaviour.
            insert = text(
                "INSERT INTO users (username, password_hash, face_encodings, created_at,"
                " faces_updated_at) VALUES (:u, 'x', x'00', '2026-01-01', '2026-01-01')"
            )
            conn.execute(insert, {"u": "Grace"})
            with pytest.raises(IntegrityError):
                conn.execute(insert, {"u": "gRACE"})
