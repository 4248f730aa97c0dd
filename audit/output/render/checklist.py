"""The takedown response checklist (spec/licensing.md §4.6) as data, then as Markdown or HTML.

Built from the ledger alone, so it can be regenerated at any time and always says the truth: each
step's state and date come from the latest event of that step, and "what is left" is derived from
the same events. HTML escapes everything (autoescape); Markdown escapes every value it prints,
because record ids, paths and URLs come from the data and the requester.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jinja2

from audit.store.ledger import Event, Ledger, Request

STEP_TITLES = {
    "located": "Located every affected record",
    "removed": "Removed (cleaned copies written)",
    "reaudited": "Re-audited",
    "blocklisted": "Blocklisted",
    "notified": "Requester notified",
}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


@dataclass(frozen=True)
class StepRow:
    title: str
    state: str  # done | pending | failed
    date: str
    summary: str


@dataclass
class Checklist:
    """Everything the rendered checklist shows."""

    request: Request
    today: dt.date
    deadline_note: str
    steps: list[StepRow]
    records: list[dict[str, Any]]
    left: list[Todo] = field(default_factory=list)


def _when(event: Event | None) -> str:
    return "" if event is None else event.happened_at[:16].replace("T", " ")


def build(ledger: Ledger, request_id: str, today: dt.date | None = None) -> Checklist:
    """The checklist of one request as of ``today`` (UTC), derived from its events."""
    request = ledger.get(request_id)
    today = today or dt.datetime.now(dt.UTC).date()
    state = ledger.state(request_id)
    steps = [StepRow("Request received", "done", request.received.isoformat(), request.ground)]
    rejected = state["rejected"]
    if rejected is not None:
        steps.append(StepRow("Rejected", "done", _when(rejected), rejected.summary))
    for step, title in STEP_TITLES.items():
        event = state[step]
        if rejected is not None and event is None and step != "notified":
            continue
        status = "pending" if event is None else ("done" if event.ok else "failed")
        steps.append(StepRow(title, status, _when(event), event.summary if event else ""))
    return Checklist(
        request=request,
        today=today,
        deadline_note=_deadline_note(request, state["notified"], today),
        steps=steps,
        records=_records(request_id, state),
        left=_left(request, state),
    )


def _deadline_note(request: Request, notified: Event | None, today: dt.date) -> str:
    if request.deadline is None:
        return "no fixed deadline for this ground"
    if notified is not None:
        done = dt.date.fromisoformat(notified.happened_at[:10])
        verdict = "met" if done <= request.deadline else "missed"
        return f"{verdict}: requester notified on {done}"
    days = (request.deadline - today).days
    if days < 0:
        return f"OVERDUE by {-days} day(s)"
    return f"{days} day(s) left"


def _records(request_id: str, state: dict[str, Event | None]) -> list[dict[str, Any]]:
    """Each matched record, and whether a cleaned copy without it has been written."""
    located, removed = state["located"], state["removed"]
    cleaned = {f["original"]: f["cleaned"] for f in (removed.detail["files"] if removed else [])}
    rows = []
    for m in located.detail.get("matches", []) if located else []:
        if m["request_id"] != request_id:
            continue
        key = m["key"]
        rows.append(
            {
                **m,
                "matched_key": f"{key['kind']}={key['value']}",
                "state": f"removed in {cleaned[m['file']]}" if m["file"] in cleaned else "located",
            }
        )
    return rows


class Todo(NamedTuple):
    """One thing left to do, and the command that does it (if the tool can)."""

    text: str
    command: str = ""


def _left(request: Request, state: dict[str, Event | None]) -> list[Todo]:
    rid = request.request_id
    located, removed, reaudited = state["located"], state["removed"], state["reaudited"]
    left = []
    if state["rejected"] is not None:
        located = removed = reaudited = None
    elif located is None:
        left.append(Todo("Locate every affected record", f"llava-audit takedown match {rid}"))
    if state["rejected"] is None and (removed is None or state["blocklisted"] is None):
        left.append(
            Todo(
                "Write the cleaned copies and blocklist the keys",
                f"llava-audit takedown apply {rid}",
            )
        )
    clean_now = (
        reaudited is not None and reaudited.ok and (removed is None or reaudited.seq > removed.seq)
    )
    if removed is not None and not clean_now:
        left.extend(
            Todo(
                f"Put the cleaned copy {f['cleaned']} in place of {f['original']} wherever the "
                "data is used (llava-audit never modifies originals)"
            )
            for f in removed.detail.get("files", [])
        )
    images = located.detail.get("image_files", []) if located else []
    if images and not clean_now:
        left.extend(
            Todo(f"Delete the image bytes at {i} (and in caches and shards)") for i in images
        )
    if removed is not None and not clean_now:
        failed = f" (last re-audit: {reaudited.summary})" if reaudited and not reaudited.ok else ""
        left.append(Todo(f"Re-audit the data{failed}", f"llava-audit takedown verify {rid}"))
    if state["notified"] is None:
        recipients = (
            " and every recipient of the data (GDPR Art. 17(2), Art. 19)"
            if request.ground == "gdpr"
            else ""
        )
        left.append(
            Todo(
                f"Tell the requester what was done{recipients}, then record it",
                f"llava-audit takedown notify {rid}",
            )
        )
    return left


def _markdown_escape(value: Any) -> Any:
    """Every value printed into the Markdown is escaped and kept on one line (table cells)."""
    if value is None:
        return ""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


_LOADER = jinja2.PackageLoader("audit.output.render", "templates")
_HTML = jinja2.Environment(loader=_LOADER, autoescape=True, undefined=jinja2.StrictUndefined)
_MARKDOWN = jinja2.Environment(
    loader=_LOADER,
    autoescape=False,
    finalize=_markdown_escape,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def render(checklist: Checklist, fmt: str = "md") -> str:
    """The checklist as Markdown (``md``) or a self-contained HTML page (``html``)."""
    if fmt == "html":
        return _HTML.get_template("takedown_checklist.html.j2").render(c=checklist)
    return _MARKDOWN.get_template("takedown_checklist.md.j2").render(c=checklist)
