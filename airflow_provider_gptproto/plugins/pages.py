"""HTML of the Video tab and the gallery: rendered on the server, every value escaped.

Airflow shows plugin views in a sandboxed iframe without top-level navigation, so links meant for
the whole window (a DAG run, a task) are followed by a few lines of script that click an anchor in
the parent document (same origin; the sandbox allows scripts and same-origin access).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from urllib.parse import quote, urlencode

from airflow_provider_gptproto.plugins.records import VideoRecord

# Airflow's UI is Chakra UI: its theme lives in CSS variables (--chakra-colors-bg, ...) on the UI's
# root element, switched between light and dark there. The pages use the same variables, copied from
# the parent document by _THEME (the fallbacks are Chakra's defaults, for a page opened on its own).
_STYLE = """
:root { color-scheme: light;
  --chakra-colors-bg: #ffffff; --chakra-colors-bg-subtle: #fafafa; --chakra-colors-bg-muted: #f4f4f5;
  --chakra-colors-fg: #09090b; --chakra-colors-fg-muted: #52525b; --chakra-colors-border: #e4e4e7;
  --chakra-colors-border-emphasized: #d4d4d8; --chakra-colors-blue-fg: #1d4ed8;
  --chakra-colors-color-palette-focus-ring: #3b82f6; --chakra-radii-l2: 0.25rem; --chakra-radii-l3: 0.375rem;
  --chakra-fonts-body: Inter, -apple-system, system-ui, "Segoe UI", Roboto, sans-serif; }
:root[data-theme="dark"] { color-scheme: dark;
  --chakra-colors-bg: #09090b; --chakra-colors-bg-subtle: #111111; --chakra-colors-bg-muted: #262626;
  --chakra-colors-fg: #fafafa; --chakra-colors-fg-muted: #a1a1aa; --chakra-colors-border: #27272a;
  --chakra-colors-border-emphasized: #3f3f46; --chakra-colors-blue-fg: #60a5fa; }
html, body { background: var(--chakra-colors-bg); color: var(--chakra-colors-fg); }
body { margin: 16px; font-family: var(--chakra-fonts-body); font-size: 14px; line-height: 1.43; }
h1 { font-size: 18px; font-weight: 600; margin: 0 0 12px; }
a { color: var(--chakra-colors-blue-fg); text-decoration: none; } a:hover { text-decoration: underline; }
.video { display: flex; gap: 24px; flex-wrap: wrap; margin-bottom: 24px; }
.video > div { flex: 0 1 440px; }
video { width: 100%; background: #000; border-radius: var(--chakra-radii-l3); }
dl { flex: 1 1 280px; display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; margin: 0;
  align-content: start; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
.notice { padding: 12px 16px; border-radius: var(--chakra-radii-l3); background: rgba(200, 120, 0, .15);
  max-width: 560px; }
.toolbar { display: flex; gap: 8px; align-items: center; margin-bottom: 16px; }
.toolbar label { font-weight: 500; }
select, .pager .button { height: 36px; box-sizing: border-box; border: 1px solid var(--chakra-colors-border);
  border-radius: var(--chakra-radii-l2); background-color: var(--chakra-colors-bg);
  color: var(--chakra-colors-fg); font: inherit; font-size: 14px; }
select { appearance: none; min-width: 220px; padding: 0 32px 0 12px; cursor: pointer;
  background-image: url("CHEVRON");
  background-repeat: no-repeat; background-position: right 10px center; }
select:hover { border-color: var(--chakra-colors-border-emphasized); }
select:focus-visible, .pager .button:focus-visible, .poster:focus-visible {
  outline: 2px solid var(--chakra-colors-color-palette-focus-ring); outline-offset: 1px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 16px; }
.card { border: 1px solid var(--chakra-colors-border); border-radius: var(--chakra-radii-l3);
  overflow: hidden; background: var(--chakra-colors-bg); }
.poster { position: relative; display: flex; align-items: center; justify-content: center; width: 100%;
  aspect-ratio: 5 / 3; padding: 0; border: 0; margin: 0; background: #000; cursor: pointer; color: #fff; }
.poster img { width: 100%; height: 100%; object-fit: contain; display: block; }
.poster .noposter { width: 100%; height: 100%; background: var(--chakra-colors-bg-muted); }
.poster .play { position: absolute; width: 44px; height: 44px; border-radius: 50%;
  background: rgba(0, 0, 0, .55); display: flex; align-items: center; justify-content: center;
  font-size: 18px; opacity: .85; }
.poster:hover .play { opacity: 1; background: rgba(0, 0, 0, .75); }
.card .body { padding: 8px 12px 10px; } .card .prompt { font-weight: 600; margin-bottom: 4px; }
.meta { color: var(--chakra-colors-fg-muted); font-size: 12px; }
.pager { margin: 16px 0; display: flex; gap: 8px; align-items: center; }
.pager .button { display: inline-flex; align-items: center; padding: 0 12px; font-weight: 500;
  text-decoration: none; }
.pager a.button:hover { background-color: var(--chakra-colors-bg-muted); text-decoration: none; }
.pager .button[aria-disabled="true"] { opacity: .4; cursor: default; }
.pager .range { color: var(--chakra-colors-fg-muted); padding: 0 4px; }
dialog { padding: 0; border: 1px solid var(--chakra-colors-border); border-radius: var(--chakra-radii-l3);
  background: var(--chakra-colors-bg); color: var(--chakra-colors-fg); width: min(960px, 92vw); }
dialog::backdrop { background: rgba(0, 0, 0, .6); }
dialog video { display: block; max-height: 75vh; border-radius: 0; }
dialog .caption { display: flex; justify-content: space-between; gap: 12px; align-items: center;
  padding: 8px 12px; }
dialog .close { border: 0; background: transparent; color: inherit; font-size: 20px; cursor: pointer; }
"""

_STYLE = _STYLE.replace(
    "CHEVRON",
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='16' height='16' fill='none' "
    "stroke='%2371717a' stroke-width='2' viewBox='0 0 24 24'%3E%3Cpath d='m6 9 6 6 6-6'/%3E%3C/svg%3E",
)

# Same origin and a sandbox that allows it: the page mirrors the UI's theme (light or dark, and its
# colours, radii and font) and follows it when the user switches.
_THEME = """
(() => {
  const names = ["colors-bg", "colors-bg-subtle", "colors-bg-muted", "colors-fg", "colors-fg-muted",
    "colors-border", "colors-border-emphasized", "colors-blue-fg", "colors-color-palette-focus-ring",
    "radii-l2", "radii-l3", "fonts-body"];
  let parentRoot;
  try { parentRoot = window.parent !== window && window.parent.document.documentElement; } catch (err) {}
  const mine = document.documentElement;
  const sync = () => {
    const theme = getComputedStyle(parentRoot);
    const dark = parentRoot.classList.contains("dark") || parentRoot.dataset.theme === "dark"
      || theme.colorScheme === "dark";
    mine.dataset.theme = dark ? "dark" : "light";
    for (const name of names) {
      const value = theme.getPropertyValue("--chakra-" + name).trim();
      if (value) mine.style.setProperty("--chakra-" + name, value);
      else mine.style.removeProperty("--chakra-" + name);
    }
  };
  if (parentRoot) {
    sync();
    const watched = { attributes: true, attributeFilter: ["class", "style", "data-theme"] };
    new MutationObserver(sync).observe(parentRoot, watched);
  } else if (window.matchMedia("(prefers-color-scheme: dark)").matches) {
    mine.dataset.theme = "dark";
  }
})();
"""

_TOP_LINKS = """
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-top]");
  if (!link) return;
  event.preventDefault();
  try {
    const doc = window.top.document, anchor = doc.createElement("a");
    anchor.href = link.href;
    doc.body.appendChild(anchor);
    anchor.click();
    anchor.remove();
  } catch (err) {
    window.location.href = link.href;
  }
});
"""

# A card's poster plays its video in a dialog over the gallery.
_PLAYER = """
(() => {
  const dialog = document.getElementById("player");
  if (!dialog) return;
  const video = dialog.querySelector("video"), caption = dialog.querySelector(".caption span");
  document.addEventListener("click", (event) => {
    const poster = event.target.closest("button.poster[data-video]");
    if (!poster) return;
    video.src = poster.dataset.video;
    caption.textContent = poster.dataset.caption || "";
    dialog.showModal();
    video.play().catch(() => {});
  });
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
  dialog.addEventListener("close", () => { video.pause(); video.removeAttribute("src"); video.load(); });
})();
"""


def _document(title: str, body: str, script: str = "") -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style><script>{_THEME}</script></head>"
        f"<body>{body}<script>{_TOP_LINKS}{script}</script></body></html>"
    )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def run_href(ui_base: str, dag_id: str, run_id: str) -> str:
    return f"{ui_base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _metadata(fields: Mapping[str, object]) -> str:
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in fields.items())
    return f"<dl>{rows}</dl>"


def video_tab(task_label: str, videos: Iterable[tuple[VideoRecord, str | None, str | None, str]]) -> str:
    """The task instance's Video tab.

    ``videos``: (record, player source, download link, notice) per video; no source means no player.
    """
    parts = [f"<h1>{escape(task_label)}</h1>"]
    shown = False
    for record, source, download, notice in videos:
        shown = True
        player = (
            f'<video controls preload="auto" src="{escape(source)}"></video>'
            if source
            else f'<p class="notice" role="status">{escape(notice)}</p>'
        )
        links = (
            f'<p><a href="{escape(download)}" download>Download the stored file</a></p>' if download else ""
        )
        hint = f'<p class="meta">{escape(notice)}</p>' if source and notice else ""
        parts.append(
            f'<section class="video"><div>{player}{hint}{links}</div>{_metadata(record.metadata())}</section>'
        )
    if not shown:
        parts.append(
            '<p class="notice" role="status">This task has no GPTProto video (yet). The Video tab shows the '
            "result of GPTProto generate, download and batch tasks once they have one.</p>"
        )
    return _document("GPTProto video", "".join(parts))


def video_tab_href(ui_base: str, record: VideoRecord) -> str:
    """The UI's page of the task instance's Video tab (``url_route`` ``gptproto-video``)."""
    task = f"{run_href(ui_base, record.dag_id, record.run_id)}/tasks/{quote(record.task_id, safe='')}"
    mapped = f"/mapped/{record.map_index}" if record.map_index >= 0 else ""
    return f"{task}{mapped}/plugin/gptproto-video"


def _poster(ui_base: str, record: VideoRecord, poster: str | None, video: str | None) -> str:
    """The card's picture: plays the stored video in place, else opens the task's Video tab."""
    prompt = record.prompt or "(no prompt recorded)"
    picture = (
        f'<img src="{escape(poster)}" alt="" loading="lazy">'
        if poster
        else '<div class="noposter" role="img" aria-label="No poster frame"></div>'
    )
    if video:
        return (
            f'<button type="button" class="poster" data-video="{escape(video)}" '
            f'data-caption="{escape(prompt)}" aria-label="Play the video: {escape(prompt)}">'
            f'{picture}<span class="play" aria-hidden="true">&#9654;</span></button>'
        )
    return (
        f'<a class="poster" data-top href="{escape(video_tab_href(ui_base, record))}" '
        f'aria-label="Open the task\'s Video tab: {escape(prompt)}">'
        f'{picture}<span class="play" aria-hidden="true">&#9654;</span></a>'
    )


def gallery(
    ui_base: str,
    cards: Iterable[tuple[VideoRecord, str | None, str | None]],
    dag_ids: Iterable[str],
    selected_dag: str | None,
    offset: int,
    limit: int,
    total: int,
) -> str:
    """The "GPTProto videos" page: newest first, a DAG filter and paging links.

    ``cards``: (record, poster URL, stored video URL) per asset event; a card with a stored video
    plays it in a dialog when clicked, one without opens its task's Video tab.
    """
    options = ['<option value="">All DAGs</option>'] + [
        f'<option value="{escape(d)}"{" selected" if d == selected_dag else ""}>{escape(d)}</option>'
        for d in dag_ids
    ]
    form = (
        '<form method="get" class="toolbar"><label for="dag-filter">DAG</label>'
        '<select id="dag-filter" name="dag_id" onchange="this.form.submit()">'
        f"{''.join(options)}</select><noscript><button>Filter</button></noscript></form>"
    )
    items = []
    for record, poster, video in cards:
        run = run_href(ui_base, record.dag_id, record.run_id)
        dag = f"{ui_base}/dags/{quote(record.dag_id, safe='')}"
        items.append(
            f'<article class="card" data-event-id="{record.event_id}">'
            f"{_poster(ui_base, record, poster, video)}"
            f'<div class="body"><div class="prompt">{escape(record.prompt or "(no prompt recorded)")}</div>'
            f'<div class="meta">DAG <a data-top href="{escape(dag)}">'
            f"{escape(record.dag_id)}</a></div>"
            f'<div class="meta">Run <a data-top href="{escape(run)}">{escape(record.run_id)}</a></div>'
            f'<div class="meta"><time>{escape(_when(record.timestamp))}</time></div></div></article>'
        )
    listing = f'<div class="grid">{"".join(items)}</div>' if items else '<p role="status">No videos yet.</p>'
    player = (
        '<dialog id="player" aria-label="Video"><video controls playsinline preload="auto"></video>'
        '<div class="caption"><span></span><form method="dialog">'
        '<button class="close" aria-label="Close">&times;</button></form></div></dialog>'
    )
    parts = [
        f"<h1>GPTProto videos ({total})</h1>",
        form,
        listing,
        _pager(selected_dag, offset, limit, total),
        player,
    ]
    return _document("GPTProto videos", "".join(parts), _PLAYER)


def _pager(selected_dag: str | None, offset: int, limit: int, total: int) -> str:
    """Newer / range / Older, as Airflow's outline buttons; an end of the list shows its button disabled."""

    def href(start: int) -> str:
        query = {"offset": start, "limit": limit, **({"dag_id": selected_dag} if selected_dag else {})}
        return "?" + urlencode(query)

    if not total:
        return '<nav class="pager" aria-label="Pages"></nav>'
    newer = (
        f'<a class="button" rel="prev" href="{escape(href(max(0, offset - limit)))}">Newer</a>'
        if offset > 0
        else '<span class="button" aria-disabled="true">Newer</span>'
    )
    older = (
        f'<a class="button" rel="next" href="{escape(href(offset + limit))}">Older</a>'
        if offset + limit < total
        else '<span class="button" aria-disabled="true">Older</span>'
    )
    shown = f'<span class="range">{offset + 1}-{min(offset + limit, total)} of {total}</span>'
    return f'<nav class="pager" aria-label="Pages">{newer}{shown}{older}</nav>'
