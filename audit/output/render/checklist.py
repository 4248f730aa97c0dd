"""The takedown response checklist (spec/licensing.md §4.6) as data, then as Markdown or HTML.

Built from the ledger alone (plus the `[[derived]]` artefacts of audit.toml), so it can be
regenerated at any time and always says the truth: each step's state and date come from the latest
event of that step, and "what is left" is derived from the same events. Which steps appear depends
on the ground: GDPR (identity, extension, exemption and refusal notice, recipients, retention),
copyright (the §512(c)(3) elements, counter-notice and restore), illegal content (evidence,
report). HTML escapes everything (autoescape); Markdown escapes every value it prints, because
record ids, paths and URLs come from the data and the requester.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from audit.store.ledger import Event, Ledger, Request, add_months

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_CORE = (  # (step, title, shown before it is done)
    ("located", "Located every affected record", True),
    ("removed", "Removed (cleaned copies written)", True),
    ("blocklisted", "Blocklisted", True),
    ("images_removed", "Image bytes taken out (zip rewritten, files quarantined)", False),
    ("reaudited", "Re-audited", True),
    ("purged", "Quarantine and old zips deleted", False),
)
_BY_GROUND = {
    "gdpr": (("identity_checked", "Identity checked (Art. 12(6))"),),
    "copyright": (("notice_checked", "Notice holds the §512(c)(3)(A) elements"),),
    "illegal_content": (
        ("evidence_preserved", "Evidence preserved"),
        ("reported", "Reported to the authority or hotline"),
    ),
}
#: (name, kind, path, datasets) of each `[[derived]]` artefact.
Derived = tuple[str, str, Path, Sequence[str]]


@dataclass(frozen=True)
class StepRow:
    title: str
    state: str  # done | pending | failed
    date: str
    summary: str


class Todo(NamedTuple):
    """One thing left to do, and the command that does it (if the tool can)."""

    text: str
    command: str = ""


@dataclass
class Checklist:
    """Everything the rendered checklist shows."""

    request: Request
    today: dt.date
    deadline_note: str
    steps: list[StepRow]
    records: list[dict[str, Any]]
    recipients: list[dict[str, Any]] = field(default_factory=list)
    derived: list[dict[str, Any]] = field(default_factory=list)
    retention: str = ""
    left: list[Todo] = field(default_factory=list)


def _when(event: Event | None) -> str:
    return "" if event is None else event.happened_at[:16].replace("T", " ")


def _row(title: str, event: Event | None) -> StepRow:
    status = "pending" if event is None else ("done" if event.ok else "failed")
    return StepRow(title, status, _when(event), event.summary if event else "")


def build(
    ledger: Ledger,
    request_id: str,
    today: dt.date | None = None,
    *,
    derived: Sequence[Derived] = (),
    retention_months: int = 36,
) -> Checklist:
    """The checklist of one request as of ``today`` (UTC), derived from its events."""
    request = ledger.get(request_id)
    today = today or dt.datetime.now(dt.UTC).date()
    events = ledger.events(request_id)
    state = ledger.state(request_id)
    closed = ledger.closed(request_id)
    steps = [StepRow("Request received", "done", request.received.isoformat(), request.ground)]
    steps += [_row(title, state[step]) for step, title in _BY_GROUND.get(request.ground, ())]
    optional = [
        ("extended", "Deadline extended (Art. 12(3))"),
        ("rejected", "Rejected"),
        ("exempted", "Not erased (Art. 17(3))"),
        ("counter_notice", "Counter-notice received (§512(g))"),
        ("restored", "Restored: blocklist keys lifted"),
    ]
    steps += [_row(title, state[step]) for step, title in optional if state[step] is not None]
    if closed and request.ground == "gdpr":
        steps.append(_row("Refusal notice sent (Art. 12(4))", state["refusal_notified"]))
    if not closed:
        steps += [_row(t, state[step]) for step, t, always in _CORE if always or state[step]]
        steps.append(_row("Release recorded (§8.6)", state["released"]))
    steps.append(_row("Requester notified", state["notified"]))
    recipients = _recipients(events)
    rows = _derived(derived, events, state, _datasets(state))
    retention, due = _retention(request, state, retention_months)
    checklist = Checklist(
        request=request,
        today=today,
        deadline_note=_deadline_note(request, state["notified"], today),
        steps=steps,
        records=_records(request_id, state),
        recipients=recipients,
        derived=rows,
        retention=retention,
    )
    checklist.left = _left(request, state, closed, recipients, rows, due, today)
    return checklist


def _deadline_note(request: Request, notified: Event | None, today: dt.date) -> str:
    if request.deadline is None:
        return "no fixed deadline for this ground"
    extended = (
        f", extended from {request.original_deadline}"
        if request.deadline != request.original_deadline
        else ""
    )
    if notified is not None:
        done = dt.date.fromisoformat(notified.happened_at[:10])
        verdict = "met" if done <= request.deadline else "missed"
        return f"{verdict}: requester notified on {done}{extended}"
    days = (request.deadline - today).days
    return (f"OVERDUE by {-days} day(s)" if days < 0 else f"{days} day(s) left") + extended


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


def _recipients(events: list[Event]) -> list[dict[str, Any]]:
    """Art. 17(2)/19 recipients, the latest event per name."""
    latest = {e.detail["name"]: e for e in events if e.step == "recipient"}
    return [
        {"name": name, "notified": e.detail.get("notified") or "not yet"}
        for name, e in latest.items()
    ]


def _datasets(state: dict[str, Event | None]) -> set[str]:
    located = state["located"]
    return {m["dataset"] for m in (located.detail.get("matches", []) if located else [])}


def _derived(
    derived: Sequence[Derived],
    events: list[Event],
    state: dict[str, Event | None],
    affected: set[str],
) -> list[dict[str, Any]]:
    """Each `[[derived]]` artefact: whether the request reaches it and what was done to it."""
    done = {e.detail["name"]: e for e in events if e.step == "derived"}
    rows = []
    for name, kind, path, datasets in derived:
        event = done.get(name)
        if event is not None:
            status = event.detail["state"]
        elif state["located"] is not None and datasets and not affected & set(datasets):
            status = "not affected"
        else:
            status = "pending"
        on_disk = path.exists()
        if status == "deleted" and on_disk:
            status = "deleted, but still on disk"
        rows.append(
            {
                "name": name,
                "kind": kind,
                "path": str(path),
                "on_disk": "yes" if on_disk else "no",
                "state": status,
                "date": _when(event),
            }
        )
    return rows


def _retention(
    request: Request, state: dict[str, Event | None], months: int
) -> tuple[str, dt.date | None]:
    """What happens to the requester's contact and notes, and from when they may be redacted."""
    redacted = state["redacted"]
    if redacted is not None:
        return f"redacted on {redacted.happened_at[:10]} (SHA-256 kept in the ledger)", None
    answers = [e for e in (state["notified"], state["refusal_notified"]) if e is not None]
    if not answers:
        return f"kept until {months} month(s) after the answer", None
    due = add_months(max(dt.date.fromisoformat(e.happened_at[:10]) for e in answers), months)
    return f"kept until {due}, then redacted", due


def _left(
    request: Request,
    state: dict[str, Event | None],
    closed: bool,
    recipients: list[dict[str, Any]],
    derived: list[dict[str, Any]],
    due: dt.date | None,
    today: dt.date,
) -> list[Todo]:
    rid = request.request_id
    left = _intake_left(request, state)
    if closed:
        if request.ground == "gdpr" and state["refusal_notified"] is None:
            left.append(
                Todo(
                    "Tell the requester why, and of the right to complain to a supervisory "
                    "authority and to a judicial remedy (Art. 12(4))",
                    f"llava-audit takedown refusal-notice {rid}",
                )
            )
    else:
        left += _removal_left(rid, state)
        left += [
            Todo(
                f"Rebuild or delete the derived {d['kind']} {d['name']} ({d['path']})",
                f"llava-audit takedown derived {rid} --name {d['name']} --state rebuilt",
            )
            for d in derived
            if d["state"].startswith(("pending", "deleted, but"))
        ]
    left += [
        Todo(f"Tell the recipient {r['name']} (Art. 17(2), 19)", f"llava-audit takedown "
             f"recipient {rid} --name {r['name']} --notified YYYY-MM-DD")
        for r in recipients
        if r["notified"] == "not yet"
    ]  # fmt: skip
    if request.ground == "gdpr" and not recipients and not closed:
        left.append(
            Todo(
                "Tell every recipient of the data (Art. 17(2), 19) and record each, or record "
                "that there is none",
                f"llava-audit takedown recipient {rid} --none",
            )
        )
    if state["notified"] is None:
        left.append(
            Todo("Tell the requester what was done, then record it", f"llava-audit takedown "
                 f"notify {rid}")
        )  # fmt: skip
    if due is not None and due <= today:
        left.append(
            Todo(f"Redact the requester's data (kept until {due})", f"llava-audit takedown "
                 f"redact {rid}")
        )  # fmt: skip
    return left


def _intake_left(request: Request, state: dict[str, Event | None]) -> list[Todo]:
    """Intake checks and what the ground itself demands (identity, notice, evidence, restore)."""
    rid, left = request.request_id, []
    identity, notice = state["identity_checked"], state["notice_checked"]
    if request.ground == "gdpr" and (identity is None or not identity.ok):
        left.append(
            Todo(
                "Check the requester is the data subject (Art. 12(6)); ask for more only if "
                "in reasonable doubt",
                f"llava-audit takedown identity {rid} --method '...'",
            )
        )
    if request.ground == "copyright" and (notice is None or not notice.ok):
        missing = f": ask for {', '.join(notice.detail['missing'])}" if notice else ""
        left.append(
            Todo(
                f"Check the notice holds the six §512(c)(3)(A) elements{missing}",
                f"llava-audit takedown notice-check {rid} --present signature,work,...",
            )
        )
    if request.ground == "illegal_content":
        if state["evidence_preserved"] is None:
            left.append(
                Todo(
                    "Preserve the evidence (sealed, access-logged) before deleting",
                    f"llava-audit takedown preserve {rid} --where '...'",
                )
            )
        if state["reported"] is None:
            left.append(
                Todo(
                    "Report to the competent authority or hotline",
                    f"llava-audit takedown report {rid} --to '...'",
                )
            )
    counter = state["counter_notice"]
    if counter is not None and state["restored"] is None:
        left.append(
            Todo(
                f"Restore between {counter.detail['earliest_restore']} and "
                f"{counter.detail['latest_restore']} unless the claimant has filed an action "
                "(§512(g)(2)(C))",
                f"llava-audit takedown restore {rid} --reason '...'",
            )
        )
    return left


def _removal_left(rid: str, state: dict[str, Event | None]) -> list[Todo]:
    located, removed, reaudited = state["located"], state["removed"], state["reaudited"]
    left = []
    if located is None:
        left.append(Todo("Locate every affected record", f"llava-audit takedown match {rid}"))
    if removed is None or state["blocklisted"] is None:
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
        copies = {(f.get("cleaned_set", f["cleaned"]), f.get("set", f["original"])): "set" in f
                  for f in removed.detail.get("files", [])}  # fmt: skip
        left.extend(Todo(f"Put the cleaned {'shard set' if s else 'copy'} {new} in place of {old} "
                         "wherever the data is used (llava-audit never modifies originals)")
                    for (new, old), s in copies.items())  # fmt: skip
    images = located.detail.get("image_files", []) if located else []
    if images and not clean_now:
        left.extend(Todo(f"Delete the image bytes at {i} (and in caches and shards)",
                         f"llava-audit takedown apply {rid} --images all") for i in images)  # fmt: skip
    if clean_now and reaudited and (held := reaudited.detail.get("held")) and not state["purged"]:
        left.append(Todo(f"Delete what was kept for undoing: {'; '.join(held)}",
                         f"llava-audit takedown verify {rid} --purge"))  # fmt: skip
    if removed is not None and not clean_now:
        failed = f" (last re-audit: {reaudited.summary})" if reaudited and not reaudited.ok else ""
        left.append(Todo(f"Re-audit the data{failed}", f"llava-audit takedown verify {rid}"))
    if state["blocklisted"] is not None and state["released"] is None:
        left.append(
            Todo(
                "Record the release without it: versions affected, new version, published diff",
                f"llava-audit takedown release {rid} --affected v1 --new-version v2 --diff-url URL",
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
