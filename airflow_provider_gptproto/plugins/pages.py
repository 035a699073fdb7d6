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

_STYLE = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; font-size: 14px; }
body { margin: 16px; }
h1 { font-size: 18px; margin: 0 0 12px; }
.video { display: flex; gap: 24px; flex-wrap: wrap; margin-bottom: 24px; }
.video > div { flex: 0 1 440px; }
video { width: 100%; background: #000; border-radius: 6px; }
dl { flex: 1 1 280px; display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; margin: 0;
  align-content: start; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
.notice { padding: 12px 16px; border-radius: 6px; background: rgba(200, 120, 0, .15); max-width: 560px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 16px; }
.card { border: 1px solid rgba(128, 128, 128, .35); border-radius: 8px; overflow: hidden; }
.card img, .card .noposter { width: 100%; aspect-ratio: 16 / 10; object-fit: cover; display: block;
  background: rgba(128, 128, 128, .2); }
.card .body { padding: 8px 10px; } .card .prompt { font-weight: 600; margin-bottom: 4px; }
.meta { opacity: .8; font-size: 12px; } nav { margin: 16px 0; display: flex; gap: 16px; align-items: center; }
form { margin-bottom: 16px; }
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


def _document(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}<script>{_TOP_LINKS}</script></body></html>"
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


def gallery(
    ui_base: str,
    cards: Iterable[tuple[VideoRecord, str | None]],
    dag_ids: Iterable[str],
    selected_dag: str | None,
    offset: int,
    limit: int,
    total: int,
) -> str:
    """The "GPTProto videos" page: newest first, a DAG filter and paging links."""
    options = ['<option value="">All DAGs</option>'] + [
        f'<option value="{escape(d)}"{" selected" if d == selected_dag else ""}>{escape(d)}</option>'
        for d in dag_ids
    ]
    form = (
        '<form method="get"><label>DAG <select name="dag_id" onchange="this.form.submit()">'
        f"{''.join(options)}</select></label> <noscript><button>Filter</button></noscript></form>"
    )
    items = []
    for record, poster in cards:
        picture = (
            f'<img src="{escape(poster)}" alt="Poster frame" loading="lazy">'
            if poster
            else '<div class="noposter" role="img" aria-label="No poster frame"></div>'
        )
        run = run_href(ui_base, record.dag_id, record.run_id)
        dag = f"{ui_base}/dags/{quote(record.dag_id, safe='')}"
        items.append(
            f'<article class="card" data-event-id="{record.event_id}">{picture}<div class="body">'
            f'<div class="prompt">{escape(record.prompt or "(no prompt recorded)")}</div>'
            f'<div class="meta">DAG <a data-top href="{escape(dag)}">'
            f"{escape(record.dag_id)}</a></div>"
            f'<div class="meta">Run <a data-top href="{escape(run)}">{escape(record.run_id)}</a></div>'
            f'<div class="meta"><time>{escape(_when(record.timestamp))}</time></div></div></article>'
        )
    listing = f'<div class="grid">{"".join(items)}</div>' if items else '<p role="status">No videos yet.</p>'
    parts = [f"<h1>GPTProto videos ({total})</h1>", form, listing, _pager(selected_dag, offset, limit, total)]
    return _document("GPTProto videos", "".join(parts))


def _pager(selected_dag: str | None, offset: int, limit: int, total: int) -> str:
    def href(start: int) -> str:
        query = {"offset": start, "limit": limit, **({"dag_id": selected_dag} if selected_dag else {})}
        return "?" + urlencode(query)

    links = []
    if offset > 0:
        links.append(f'<a rel="prev" href="{escape(href(max(0, offset - limit)))}">Newer</a>')
    if total:
        links.append(f"<span>{offset + 1}-{min(offset + limit, total)} of {total}</span>")
    if offset + limit < total:
        links.append(f'<a rel="next" href="{escape(href(offset + limit))}">Older</a>')
    return f"<nav>{''.join(links)}</nav>"
