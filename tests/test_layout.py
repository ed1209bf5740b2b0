"""The layout's rules, checked on the source: the engine imports no Flask, services import no view."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "facelogin"


def imported(path):
    """Return every module name a Python file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "engine").glob("*.py")), ids=lambda p: p.name)
def test_the_engine_imports_no_flask_and_nothing_above_it(path):
    names = imported(path)
    assert not {n for n in names if n.split(".")[0] in ("flask", "flask_sqlalchemy", "flask_wtf", "werkzeug")}
    assert not {n for n in names if n.startswith(("facelogin.services", "facelogin.views", "models", "app"))}


@pytest.mark.parametrize("path", sorted((PACKAGE / "services").glob("*.py")), ids=lambda p: p.name)
def test_services_import_no_view(path):
    assert not {n for n in imported(path) if n.startswith("facelogin.views")}


def test_only_the_product_modules_stay_at_the_top_level():
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["app.py", "models.py", "serve.py"]
