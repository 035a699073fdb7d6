"""mkdocs hooks (see mkdocs.yml): pages pull README sections, other files and the example DAGs in.

The README stays the one source of what it says; the site shows the same text, with its relative
links rewritten so that they still resolve from the page (``mkdocs build --strict`` checks them),
and its ``#anchor`` links sent to the page that shows that README section.

Every page in docs/ also reads on its own as a file (on a code host, where no marker is expanded):
it has its own title and text, and links written as repository paths (``../README.md#install``,
``../bench/README.md``, ``../../airflow_provider_gptproto/hooks/gptproto.py``). The hook rewrites
those too: a README anchor to the page that shows that section, a file with a page of its own to
that page, any other file to the repository browser.
Markers, each alone on a line of a page in docs/:

- ``<!-- readme: Install -->``: that ``##`` section of README.md (headings one level up
  when it comes first on a page with no title of its own);
  ``<!-- readme: Install | optional -->`` links to the README when it has no such
  section instead of failing the build.
- ``<!-- include: bench/README.md -->``: a whole file from the repository.
- ``<!-- example-dags -->``: every DAG file in dags_examples/, its docstring and its source.

It also keeps one griffe warning from failing the build; see ``_PassedOnParams``.
"""

from __future__ import annotations

import ast
import functools
import logging
import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# A warning on an mkdocs logger fails `mkdocs build --strict`.
log = logging.getLogger("mkdocs.hooks.gptproto")
MARKER = re.compile(r"^<!-- (readme|include): (.+?)(?: \| (optional))? -->$|^<!-- (example-dags) -->$", re.M)
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
SECTION = re.compile(r"^## ", re.M)
# Repository files that have a page of their own: links to them go to that page.
PAGES = {
    "bench/README.md": "benchmarks.md",
    "bench/results.md": "benchmark-results.md",
    "dags_examples": "example-dags.md",
}


def _anchor(heading: str) -> str:
    """The anchor GitHub and mkdocs' toc give a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache
def readme_anchor_pages() -> dict[str, str]:
    """README anchors (its headings) -> the docs page whose ``readme:`` marker shows that section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sections = {part.splitlines()[0].strip(): part for part in SECTION.split(readme)[1:]}
    pages: dict[str, str] = {}
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for match in MARKER.finditer(page.read_text(encoding="utf-8")):
            part = sections.get(match[2]) if match[1] == "readme" else None
            if part is not None:
                for heading in [part.splitlines()[0], *re.findall(r"^#{3,} (.+)$", part, re.M)]:
                    pages.setdefault(_anchor(heading), page.relative_to(ROOT / "docs").as_posix())
    # A README section no page shows, which points to the one docs page with its details: that page.
    for part in sections.values():
        linked = set(re.findall(r"\]\(docs/([^)#\s]+\.md)\)", part))
        if len(linked) == 1:
            pages.setdefault(_anchor(part.splitlines()[0]), linked.pop())
    return pages


def _demoted(markdown: str) -> str:
    """Every heading one level down, outside fenced code blocks."""
    lines, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if not fenced and re.match(r"#+ ", line) else line)
    return "".join(lines)


def _target(link: str, source: str, page_dir: str, repo_url: str) -> str:
    """A link written in the repository file ``source``, as seen from a page in ``page_dir``."""
    if link.startswith("#") and source == "README.md":
        page = readme_anchor_pages().get(link[1:])
        return posixpath.relpath(page, page_dir or ".") + link if page else link
    if re.match(r"[a-z][a-z0-9+.-]*:|#|/", link):
        return link
    path, hash_, anchor = link.partition("#")
    repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path)).rstrip("/")
    if repo_path == "README.md" and source != "README.md" and readme_anchor_pages().get(anchor):
        return posixpath.relpath(readme_anchor_pages()[anchor], page_dir or ".") + hash_ + anchor
    if repo_path in PAGES:
        docs_path = PAGES[repo_path]
    elif repo_path.startswith("docs/"):
        docs_path = repo_path.removeprefix("docs/")
    else:  # source code and other files: the repository browser
        if not (ROOT / repo_path).exists():
            log.warning("%s links to %s, which does not exist", source, repo_path)
        kind = "tree" if (ROOT / repo_path).is_dir() else "blob"
        return f"{repo_url.rstrip('/')}/{kind}/main/{repo_path}{hash_}{anchor}"
    return posixpath.relpath(docs_path, page_dir or ".") + hash_ + anchor


def _relinked(text: str, source: str, page_dir: str, repo_url: str) -> str:
    return LINK.sub(lambda m: m[1] + _target(m[2], source, page_dir, repo_url) + m[3], text)


def readme_section(title: str, promote: bool) -> str | None:
    """The ``## title`` section of README.md (up to the next ``##``); ``promote``: headings one level up."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for part in SECTION.split(readme)[1:]:
        if part.splitlines()[0].strip() == title:
            section = "## " + part.rstrip() + "\n"
            return re.sub(r"^#(#+ )", r"\1", section, flags=re.M) if promote else section
    return None


def example_dags() -> str:
    """Every example DAG: its file name, its module docstring, then its full source."""
    blocks = []
    for path in sorted((ROOT / "dags_examples").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
        blocks.append(f"## {path.stem}\n\n{doc}\n\n```python\n{source.rstrip()}\n```\n")
    return "\n".join(blocks)


class _PassedOnParams(logging.Filter):
    """Let operators and sensors document what they pass on through ``**kwargs``.

    They document BaseOperator/BaseSensorOperator parameters (``timeout``, ``poke_interval``,
    ``mode``) with the defaults users get; griffe cannot match those to the signature and says so.
    Every other docstring warning still fails the strict build.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "No matching parameter for" not in record.getMessage()


def on_startup(command: str, dirty: bool) -> None:
    logging.getLogger("mkdocs.plugins.griffe").addFilter(_PassedOnParams())


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    page_dir = posixpath.dirname(page.file.src_uri)
    repo_url = config.get("repo_url") or ""

    def expand(match: re.Match[str]) -> str:
        kind, arg, optional, dags = match.groups()
        if dags:
            return example_dags()
        # The first section's heading is the page title, unless the page has one before the marker.
        titled = re.search(r"^(# |<!-- readme: )", match.string[: match.start()], re.M) is not None
        if kind == "include":
            text = (ROOT / arg).read_text(encoding="utf-8")
            if titled:  # the file's own headings one level down, under the page's title
                text = _demoted(text)
            return _relinked(text, arg, page_dir, repo_url)
        section = readme_section(arg, promote=not titled)
        if section is None:
            anchor = re.sub(r"[^a-z0-9 -]", "", arg.lower()).replace(" ", "-")
            if optional:
                return f"See [{arg} in the README]({repo_url}#{anchor})."
            raise ValueError(f"{page.file.src_uri}: README.md has no '## {arg}' section")
        return _relinked(section, "README.md", page_dir, repo_url)

    own = _relinked(markdown, f"docs/{page.file.src_uri}", page_dir, repo_url)
    return MARKER.sub(expand, own)
