"""Every file under docs/ reads as a page on its own, as a code host shows it (issue 23 item 7).

The site expands include markers (``<!-- readme: ... -->``, ``<!-- include: ... -->``,
``::: module``); a code host shows the file as it stands. So each page, with its markers taken out,
must still have a title and text of its own, its relative links must lead to files of the
repository, and the pages README links to must hold the text README sends the reader for.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
MARKER_LINE = re.compile(r"^(<!-- .*? -->|::: \S+)\s*$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MIN_WORDS = 40  # a title and a paragraph that says what the page holds
README_TARGET_WORDS = 300  # a page README sends the reader to for details has the details


def own_text(page: Path) -> str:
    """The page as a code host shows it: markers are invisible there, so they are taken out."""
    return MARKER_LINE.sub("", page.read_text(encoding="utf-8"))


def prose_words(markdown: str) -> int:
    return len(re.findall(r"[A-Za-z]{2,}", FENCE.sub("", markdown)))


def github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_there_are_pages() -> None:
    assert len(PAGES) >= 15, PAGES  # a glob that found nothing would pass everything below


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_each_page_has_a_title_and_text_of_its_own(page: Path) -> None:
    text = own_text(page)
    assert re.match(r"\s*# \S", text), f"{page.relative_to(ROOT)} has no title of its own:\n{text[:300]}"
    words = prose_words(text)
    assert words >= MIN_WORDS, f"{page.relative_to(ROOT)} holds {words} words outside its markers:\n{text}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_lead_to_files_of_the_repository(page: Path) -> None:
    broken = []
    for link in LINK.findall(FENCE.sub("", own_text(page))):
        if re.match(r"[a-z][a-z0-9+.-]*:|/", link):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() or ROOT not in target.parents:
            broken.append(f"{link}: no such file in the repository")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: {target.relative_to(ROOT)} has no heading #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_pages_readme_links_to_hold_the_text() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = sorted({link.split("#")[0] for link in LINK.findall(readme) if re.match(r"docs/.+\.md", link)})
    # The UI plugin and the batch operator live on their own pages; README links there for details.
    assert {"docs/ui.md", "docs/batch.md"} <= set(linked), linked
    thin = {page: prose_words(own_text(ROOT / page)) for page in linked}
    assert all(words >= README_TARGET_WORDS for words in thin.values()), thin
