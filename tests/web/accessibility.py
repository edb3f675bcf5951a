"""axe-core in the page under test: every browser test can assert zero violations.

axe-playwright-python ships axe-core's own script (no download at run time) and injects it
with `page.evaluate`; the rules are axe-core's defaults plus the WCAG 2.1 A/AA tags.
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

_axe = Axe()
_OPTIONS: dict[str, Any] = {
    "resultTypes": ["violations"],
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
}


def axe_violations(page: Page, context: str | None = None) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (optionally within a CSS selector)."""
    results = _axe.run(page, context=context, options=_OPTIONS)
    return list(results.response["violations"])


def assert_accessible(page: Page, context: str | None = None) -> None:
    """Fails with each violated rule, its impact and the offending elements."""
    violations = axe_violations(page, context)
    lines = [
        f"{v['id']} ({v.get('impact')}): {v['help']} -> "
        + ", ".join(str(n.get("target")) for n in v.get("nodes", [])[:5])
        for v in violations
    ]
    assert not violations, f"axe-core violations on {page.url}:\n" + "\n".join(lines)
