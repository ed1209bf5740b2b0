"""The Flask extensions the factory attaches: migrations and CSRF protection (the database is `models.db`)."""

from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

migrate = Migrate()
csrf = CSRFProtect()
