"""The steps of a takedown response besides finding and removing: each one a ledger event.

What the law asks of a maintainer differs per ground (spec/licensing.md §4.6, §8.6): GDPR needs an
identity check, may be extended once by two months (Art. 12(3)), may be refused under Art. 17(3)
with an Art. 12(4) notice, must reach every recipient (Art. 17(2), 19) and must not keep the
requester's data forever; a DMCA notice must hold the §512(c)(3) elements and can be answered by a
counter-notice that restores the material (§512(g)); illegal content needs its evidence preserved
and a report made. Each step validates its dates (never in the future, never before the request
arrived) and appends one event; the checklist shows them all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from audit.config import Config
from audit.errors import TakedownError
from audit.output.render.checklist import build as build_checklist
from audit.output.render.checklist import render as render_checklist
from audit.store import Store
from audit.store.ledger import Event, Ledger, Request, check_date, today
from audit.store.ledgerfile import opened_ledger

#: 17 U.S.C. §512(c)(3)(A): what a notice must contain to be a notice at all.
DMCA_ELEMENTS = {
    "signature": "(i) signature of the owner or of a person authorised to act for them",
    "work": "(ii) identification of the copyrighted work claimed to be infringed",
    "material": "(iii) identification of the material and where to find it",
    "contact": "(iv) the complaining party's address, telephone number or email",
    "good-faith": "(v) a good-faith statement that the use is not authorised",
    "accuracy": "(vi) a statement, under penalty of perjury, that the notice is accurate and the "
    "sender is authorised",
}
DERIVED_STATES = ("rebuilt", "deleted", "kept")
#: §512(g)(2)(C): restore no sooner than 10 and no later than 14 business days after receipt.
RESTORE_AFTER, RESTORE_BY = 10, 14


def checklist(
    config: Config, store: Store, request_id: str, fmt: str = "md", today: dt.date | None = None
) -> str:
    """The response checklist (Markdown or HTML), derived from the ledger as it stands now."""
    with opened_ledger(config, store) as ledger:
        built = build_checklist(
            ledger,
            request_id,
            today,
            derived=[(d.name, d.kind, config.path(d.path), d.datasets) for d in config.derived],
            retention_months=config.takedown.personal_data_months,
        )
    return render_checklist(built, fmt)


def event_day(when: dt.date | None, request: Request, what: str) -> str:
    """A maintainer's date (default today), validated, as the event's ISO date."""
    day = when or today()
    check_date(day, what, not_before=request.received)
    return day.isoformat()


def only_for(request: Request, *grounds: str, step: str) -> None:
    if request.ground not in grounds:
        raise TakedownError(
            f"{request.request_id} is a {request.ground} request; `{step}` applies to "
            f"{' or '.join(grounds)} requests"
        )


@contextlib.contextmanager
def ground_step(
    config: Config, store: Store, request_id: str, *grounds: str, step: str
) -> Iterator[tuple[Ledger, Request]]:
    """The open ledger and the request, once the request is of a ground ``step`` applies to."""
    with opened_ledger(config, store) as ledger:
        request = ledger.get(request_id)
        only_for(request, *grounds, step=step)
        yield ledger, request


def required(value: str, what: str) -> str:
    if not value.strip():
        raise TakedownError(f"say {what}")
    return value.strip()


def notify(
    config: Config, store: Store, request_id: str, *, when: dt.date | None = None, note: str = ""
) -> Event:
    """§4.6 step 6: the requester was told what was done (recipients are their own step)."""
    with opened_ledger(config, store) as ledger:
        day = event_day(when, ledger.get(request_id), "notified date")
        return ledger.record(
            request_id, "notified", summary=note or "requester notified", happened_at=day
        )


def reject(config: Config, store: Store, request_id: str, *, reason: str) -> Event:
    """§8.6 action `rejected` (e.g. not verifiable): nothing is removed, it no longer blocks."""
    with opened_ledger(config, store) as ledger:
        ledger.get(request_id)
        if ledger.state(request_id)["blocklisted"] is not None:
            raise TakedownError(f"{request_id} is already applied; its keys stay on the blocklist")
        return ledger.record(
            request_id,
            "rejected",
            summary=required(reason, "why the request is rejected (--reason)"),
        )


def notice_check(
    config: Config,
    store: Store,
    request_id: str,
    *,
    present: Iterable[str],
    when: dt.date | None = None,
) -> Event:
    """DMCA intake: which §512(c)(3)(A) elements the notice holds; incomplete is not a notice."""
    have = sorted(set(present))
    unknown = [e for e in have if e not in DMCA_ELEMENTS]
    if unknown:
        raise TakedownError(
            f"unknown §512(c)(3) element {', '.join(unknown)} (one of {', '.join(DMCA_ELEMENTS)})"
        )
    missing = [e for e in DMCA_ELEMENTS if e not in have]
    with ground_step(config, store, request_id, "copyright", step="notice-check") as (
        ledger,
        request,
    ):
        return ledger.record(
            request_id,
            "notice_checked",
            ok=not missing,
            summary="all six §512(c)(3)(A) elements present"
            if not missing
            else f"incomplete notice, missing: {', '.join(missing)}",
            happened_at=event_day(when, request, "notice check date"),
            detail={"present": have, "missing": missing},
        )


def _business_days(start: dt.date, days: int) -> dt.date:
    """``days`` weekdays after ``start`` (public holidays are not counted out)."""
    day = start
    while days:
        day += dt.timedelta(days=1)
        days -= day.weekday() < 5
    return day


def counter_notice(
    config: Config, store: Store, request_id: str, *, received: dt.date, note: str = ""
) -> Event:
    """§512(g)(3): a counter-notice arrived for removed material; restoring may follow."""
    with ground_step(config, store, request_id, "copyright", step="counter-notice") as (
        ledger,
        request,
    ):
        if ledger.state(request_id)["blocklisted"] is None:
            raise TakedownError(f"{request_id} is not applied: nothing was removed to restore")
        day = event_day(received, request, "counter-notice date")
        earliest = _business_days(received, RESTORE_AFTER)
        return ledger.record(
            request_id,
            "counter_notice",
            summary=f"counter-notice received; restore from {earliest} unless the claimant sues"
            + (f" ({note})" if note else ""),
            happened_at=day,
            detail={
                "earliest_restore": earliest.isoformat(),
                "latest_restore": _business_days(received, RESTORE_BY).isoformat(),
            },
        )


def restore(
    config: Config, store: Store, request_id: str, *, reason: str, when: dt.date | None = None
) -> Event:
    """§512(g)(2)(C): lift the request's blocklist keys by an event (the keys stay recorded)."""
    with opened_ledger(config, store) as ledger:
        request = ledger.get(request_id)
        counter = ledger.state(request_id)["counter_notice"]
        if counter is None:
            raise TakedownError(f"{request_id} has no counter-notice: record it first")
        day = event_day(when, request, "restore date")
        earliest = counter.detail["earliest_restore"]
        if day < earliest:
            raise TakedownError(f"restore no sooner than {earliest} (§512(g)(2)(C))")
        keys = [k for k, rid in ledger.blocklist() if rid == request_id]
        return ledger.record(
            request_id,
            "restored",
            summary=f"{len(keys)} key(s) lifted: {required(reason, 'why (--reason)')}",
            happened_at=day,
            lift=keys,
        )


def preserve(
    config: Config, store: Store, request_id: str, *, where: str, when: dt.date | None = None
) -> Event:
    """Illegal content: evidence kept (sealed, access-logged) before the data is deleted."""
    with ground_step(config, store, request_id, "illegal_content", step="preserve") as (
        ledger,
        request,
    ):
        return ledger.record(
            request_id,
            "evidence_preserved",
            summary=f"evidence preserved at {required(where, 'where (--where)')}",
            happened_at=event_day(when, request, "preservation date"),
        )


def report(
    config: Config,
    store: Store,
    request_id: str,
    *,
    to: str,
    reference: str = "",
    when: dt.date | None = None,
) -> Event:
    """Illegal content: reported to the competent authority or hotline."""
    with ground_step(config, store, request_id, "illegal_content", step="report") as (
        ledger,
        request,
    ):
        ref = f" (reference {reference})" if reference else ""
        return ledger.record(
            request_id,
            "reported",
            summary=f"reported to {required(to, 'to whom (--to)')}{ref}",
            happened_at=event_day(when, request, "report date"),
            detail={"to": to.strip(), "reference": reference},
        )


def release(
    config: Config,
    store: Store,
    request_id: str,
    *,
    versions_affected: list[str],
    new_version: str,
    diff_url: str = "",
    when: dt.date | None = None,
) -> Event:
    """§8.6: which released versions held the data, the version without it, its published diff."""
    with opened_ledger(config, store) as ledger:
        request = ledger.get(request_id)
        if ledger.state(request_id)["blocklisted"] is None:
            raise TakedownError(f"{request_id} is not applied yet: apply it before a release")
        detail: dict[str, Any] = {
            "versions_affected": [v.strip() for v in versions_affected if v.strip()],
            "new_version": required(new_version, "the new version id (--new-version)"),
            "diff_url": diff_url,
        }
        return ledger.record(
            request_id,
            "released",
            summary=f"{new_version} released without it (affected: "
            f"{', '.join(detail['versions_affected']) or 'none'})",
            happened_at=event_day(when, request, "release date"),
            detail=detail,
        )


def derived(
    config: Config, store: Store, request_id: str, *, name: str, state: str, note: str = ""
) -> Event:
    """A `[[derived]]` artefact (shard, zip, checkpoint) was rebuilt, deleted or kept (and why)."""
    known = [d.name for d in config.derived]
    if name not in known:
        raise TakedownError(
            f"unknown derived artefact {name!r} (in [[derived]]: {', '.join(known) or 'none'})"
        )
    if state not in DERIVED_STATES:
        raise TakedownError(f"unknown state {state!r} (one of {', '.join(DERIVED_STATES)})")
    if state == "kept":
        note = required(note, "why the artefact is kept (--note)")
    with opened_ledger(config, store) as ledger:
        ledger.get(request_id)
        return ledger.record(
            request_id,
            "derived",
            summary=f"{name}: {state}" + (f" ({note})" if note else ""),
            detail={"name": name, "state": state},
        )
