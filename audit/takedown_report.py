"""The takedown requests as a run's report shows them: id, ground, deadline, what is left.

Each request's response checklist (the same one `takedown checklist --format html` prints) is
written into the run folder, so the report links to it and an archived run keeps it. The
requester's contact and notes are personal data kept in the ledger only: the run folder (served,
archived by CI) gets them redacted.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import msgspec

from audit.atomic import write_atomic
from audit.config import Config
from audit.output.model import TAKEDOWNS_DIR, TakedownSummary
from audit.output.render.checklist import build as build_checklist
from audit.output.render.checklist import render as render_checklist
from audit.store import Store
from audit.store.ledger import REDACTED
from audit.store.ledgerfile import opened_ledger

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def takedown_overview(
    config: Config, store: Store, run_dir: Path, today: dt.date | None = None
) -> list[TakedownSummary]:
    """Every request in the ledger, open ones first; writes ``takedowns/<id>.html`` per request."""
    out = []
    with opened_ledger(config, store) as ledger:
        for request in ledger.requests():
            built = build_checklist(
                ledger,
                request.request_id,
                today,
                derived=[(d.name, d.kind, config.path(d.path), d.datasets) for d in config.derived],
                retention_months=config.takedown.personal_data_months,
            )
            built.request = msgspec.structs.replace(
                built.request, requester_contact=REDACTED, notes=REDACTED
            )
            page = f"{TAKEDOWNS_DIR}/{_UNSAFE.sub('_', request.request_id)}.html"
            write_atomic(run_dir / page, render_checklist(built, "html").encode("utf-8"))
            out.append(
                TakedownSummary(
                    request_id=request.request_id,
                    ground=request.ground,
                    received=request.received,
                    deadline=request.deadline,
                    deadline_note=built.deadline_note,
                    closed=ledger.closed(request.request_id),
                    open_steps=[todo.text for todo in built.left],
                    checklist=page,
                )
            )
    return sorted(out, key=lambda t: (t.closed, not t.open_steps, t.request_id))
