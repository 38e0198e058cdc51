"""The README and the pages under docs/ say what runs: a front door of at most 250 lines, links that
lead somewhere, `make` targets the Makefile has, `python -m` modules the repository holds, and no
branch or session history.

Text only: nothing here imports the platform.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250
HISTORY = ("this branch", "this session")

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE_CODE = re.compile(r"``(.+?)``|`([^`]+)`", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
MAKE = re.compile(r"(?<![\w/.-])make((?:\s+-[A-Za-z]+)*)\s+([A-Za-z][\w.-]*)(?![\w.=-])")
PYTHON_M = re.compile(r"(?<![\w-])python3?\s+-m\s+([A-Za-z_][\w.]*)")
MAKE_RULE = re.compile(r"^([A-Za-z][\w.-]*(?:[ \t]+[A-Za-z][\w.-]*)*)[ \t]*:(?!=)", re.M)


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def code_of(text: str) -> list[str]:
    """Every fenced block and every inline code span: where commands are written."""
    blocks = FENCE.findall(text)
    prose = FENCE.sub("", text)
    return blocks + [double or single for double, single in INLINE_CODE.findall(prose)]


def prose_of(text: str) -> str:
    """The text outside code, where a link is a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors_of(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings (lowercase, punctuation dropped, spaces to hyphens)."""
    anchors: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def makefile_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return {name for rule in MAKE_RULE.findall(makefile) for name in rule.split()}


def module_exists(module: str) -> bool:
    """`python -m module` can run: every parent a package, the module a file or a package with `__main__`."""
    parts = module.split(".")
    for depth in range(1, len(parts)):
        if not (ROOT.joinpath(*parts[:depth]) / "__init__.py").is_file():
            return False
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def test_the_readme_is_a_front_door():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in LINK.findall(prose_of(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors_of(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.name}")
    assert not broken, f"{page_id(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_make_target_named_is_in_the_makefile(page):
    targets = makefile_targets()
    named = {m.group(2) for code in code_of(page.read_text()) for m in MAKE.finditer(code)}
    assert not named - targets, f"{page_id(page)} names make targets the Makefile lacks: {named - targets}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_python_module_named_exists_in_the_repository(page):
    named = {module for code in code_of(page.read_text()) for module in PYTHON_M.findall(code)}
    missing = sorted(module for module in named if not module_exists(module))
    assert not missing, f"{page_id(page)} runs modules the repository does not hold: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_no_page_tells_branch_or_session_history(page):
    text = page.read_text().lower()
    assert not [words for words in HISTORY if words in text], page_id(page)


def test_the_checks_find_what_they_check():
    """The patterns match the pages as written: a check that finds nothing would pass for nothing."""
    readme = README.read_text()
    assert {"demo", "test"} <= {m.group(2) for code in code_of(readme) for m in MAKE.finditer(code)}
    assert {"demo", "test", "test-e2e", "test-celery", "test-reliability"} <= makefile_targets()
    assert "docs/operating.md" in LINK.findall(prose_of(readme))
    assert "include.cli" in {module for code in code_of(readme) for module in PYTHON_M.findall(code)}
    assert "make-demo-env" not in makefile_targets()
    assert module_exists("tools.reliability") and module_exists("include.cli")
    assert not module_exists("include.ui") and not module_exists("tools.nothing")
    assert "the-gate-and-drift-rules" in anchors_of(ROOT / "docs" / "model-lifecycle.md")
