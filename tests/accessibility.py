"""The accessibility audit of the browser tests: axe-core, run in a Playwright page.

axe-core's script comes from the installed axe-playwright-python package (pinned in
requirements-dev.txt) and is put into the page by the test: nothing is fetched at run time
and nothing is shipped in static/. Every page the audit saw, the moderate and minor findings it
let pass and what axe could not decide alone are written to test-artifacts/accessibility/NAME.json.
"""

import json
import os
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "accessibility"  # the repository root's
SEVERE = ("serious", "critical")
# WCAG 2.2 A and AA, and axe's best practices (landmarks, one h1, headings in order...).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def findings(violations):
    """Return one line per offending node: the rule, its impact, the node and axe's advice."""
    return [
        f"{v['id']} ({v['impact']}): {', '.join(map(str, node['target']))} {node['html'][:160]!r} - "
        f"{node.get('failureSummary', v['help']).replace(chr(10), ' ')}"
        for v in violations
        for node in v["nodes"]
    ]


def audit(page, name):
    """Run axe-core on `page` as it is now (called `name` in the report); fail on a serious or critical
    violation, naming the rule, the page and the node; return the lesser violations."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        reason = "the axe-playwright-python package is missing: `make install-dev` installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the accessibility audit: {reason}")
        pytest.skip(reason)
    options = {"runOnly": {"type": "tag", "values": TAGS}, "resultTypes": ["violations", "incomplete"]}
    results = Axe().run(page, options=options)
    violations = results.response["violations"]
    severe = [v for v in violations if v["impact"] in SEVERE]
    lesser = [v for v in violations if v["impact"] not in SEVERE]
    REPORTS.mkdir(parents=True, exist_ok=True)
    # "incomplete": what axe could not decide alone (contrast over an image, say), for a person to look at.
    unsure = findings(results.response["incomplete"])
    report = {"url": page.url, "severe": findings(severe), "lesser": findings(lesser), "incomplete": unsure}
    (REPORTS / f"{name}.json").write_text(json.dumps(report, indent=2))
    lines = "\n  ".join(findings(severe))
    assert not severe, f"accessibility: page {name!r} ({page.url}) has serious or critical violations:\n  {lines}"
    return lesser
