"""The README and docs/ hold together: every relative link leads somewhere, every param is described."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import ROOT, dotted_leaves

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def doc_pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def prose(page: Path) -> str:
    """The page without code blocks, where a `[x](y)` is an example, not a link."""
    return FENCE.sub("", page.read_text())


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated heading numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    for heading in HEADING.findall(prose(page)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def broken_links(root: Path) -> list[str]:
    """`page: target` for each relative link whose file, or heading, does not exist."""
    broken = []
    for page in doc_pages(root):
        for target in LINK.findall(INLINE_CODE.sub("", prose(page))):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and (linked.suffix != ".md" or anchor not in anchors(linked))):
                broken.append(f"{page.relative_to(root)}: {target}")
    return broken


def test_every_relative_link_in_the_readme_and_docs_leads_to_a_file_and_heading():
    assert broken_links(ROOT) == []


def test_a_link_to_a_missing_file_or_heading_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "# Top\n\n[ok](docs/a.md#two-words) [gone](docs/none.md) [no heading](docs/a.md#three)\n"
        "[web](https://example.org/x.md) `[code](docs/none.md)`\n\n```\n[example](docs/none.md)\n```\n"
    )
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Two `words`\n\n[up](../README.md#top) [self](#a)\n")
    assert broken_links(tmp_path) == ["README.md: docs/none.md", "README.md: docs/a.md#three"]


def test_every_param_is_described_in_the_pipeline_page(project_params):
    page = (ROOT / "docs" / "pipeline.md").read_text()
    assert [key for key in dotted_leaves(project_params) if f"| `{key}` |" not in page] == []
