"""README.md and the docs/ pages, in reading order, for the tests that check what they say
(`from docs_pages import pages`)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`+[^`\n]*`+")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose(text: str) -> str:
    """The text without fenced blocks and inline code, where brackets are code, not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def link_targets(text: str) -> list[str]:
    """Every inline link's target, in order."""
    return LINK.findall(prose(text))


def is_relative(target: str) -> bool:
    return not SCHEME.match(target) and not target.startswith("/")


def linked_pages(page: Path) -> list[Path]:
    """The pages of the docs/ folder beside `page`'s repository that `page` links to, in the order
    of their first link."""
    docs = (page.parent if page.parent.name == "docs" else page.parent / "docs").resolve()
    found = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0]
        if path and is_relative(target):
            path = (page.parent / path).resolve()
            if path.parent == docs and path.suffix == ".md" and path not in found:
                found.append(path)
    return found


def pages(repo: Path = REPO) -> list[Path]:
    """README.md first, then the docs/*.md pages in the order README.md first links them, then the
    pages README does not link, by name (tests/test_docs.py fails on those)."""
    readme = (repo / "README.md").resolve()
    linked = [page for page in linked_pages(readme) if page.is_file()]
    return [readme, *linked, *sorted(set((repo / "docs").resolve().glob("*.md")) - set(linked))]


def launch_lines(page: Path) -> list[str]:
    """The `accelerate launch` commands of `page`'s fenced blocks, continuation lines joined."""
    text = page.read_text(encoding="utf-8") if page.is_file() else ""
    lines = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.DOTALL):
        lines += [line.strip() for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines()
                  if line.strip().startswith("accelerate launch")]
    return lines
