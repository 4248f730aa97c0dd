"""GDPR steps of a takedown response (spec/licensing.md §4.6), each one ledger event.

The requester must be who they say (Art. 12(6)); the one-month clock may be extended once by two
months with a reason told in time (Art. 12(3)); erasure may be refused on an Art. 17(3) basis, and
then an Art. 12(4) notice is owed; every recipient must be told (Art. 17(2), 19); and the
requester's own data is kept only as long as needed (Art. 5(1)(e)), then redacted to a hash.
"""

from __future__ import annotations

import datetime as dt

from audit.config import Config
from audit.errors import TakedownError
from audit.store import Store
from audit.store.ledger import Event, Ledger, add_months, today
from audit.store.ledgerfile import opened_ledger
from audit.takedown_steps import event_day, ground_step, required

#: GDPR Art. 17(3): when erasure is not owed.
EXEMPTIONS = {
    "expression": "Art. 17(3)(a) freedom of expression and information",
    "legal-obligation": "Art. 17(3)(b) a legal obligation or a task in the public interest",
    "public-health": "Art. 17(3)(c) public interest in public health",
    "archiving-research": "Art. 17(3)(d) archiving, scientific or historical research or "
    "statistics, where erasure would make it impossible or seriously impair it",
    "legal-claims": "Art. 17(3)(e) establishment, exercise or defence of legal claims",
}


def identity(
    config: Config,
    store: Store,
    request_id: str,
    *,
    verified: bool,
    method: str,
    when: dt.date | None = None,
) -> Event:
    """GDPR Art. 12(6): whether the requester is the data subject, and how that was checked."""
    with ground_step(config, store, request_id, "gdpr", step="identity") as (ledger, request):
        return ledger.record(
            request_id,
            "identity_checked",
            ok=verified,
            summary=("identity verified: " if verified else "identity NOT verified: ")
            + required(method, "how the identity was checked (--method)"),
            happened_at=event_day(when, request, "identity check date"),
            detail={"verified": verified},
        )


def extend(
    config: Config, store: Store, request_id: str, *, reason: str, when: dt.date | None = None
) -> Event:
    """GDPR Art. 12(3): two more months, once, told to the requester within the first month."""
    with ground_step(config, store, request_id, "gdpr", step="extend") as (ledger, request):
        if ledger.state(request_id)["extended"] is not None:
            raise TakedownError(f"{request_id} was already extended (Art. 12(3) allows it once)")
        day = event_day(when, request, "extension date")
        original = request.original_deadline
        if original is None or dt.date.fromisoformat(day) > original:
            raise TakedownError(
                f"the extension must be told to the requester by the deadline {original}"
            )
        new = add_months(original, 2)
        return ledger.record(
            request_id,
            "extended",
            summary=f"deadline extended to {new}: "
            + required(reason, "why (--reason: complexity, number of requests)"),
            happened_at=day,
            detail={"deadline": new.isoformat(), "previous": original.isoformat()},
        )


def exempt(
    config: Config,
    store: Store,
    request_id: str,
    *,
    basis: str,
    reason: str,
    when: dt.date | None = None,
) -> Event:
    """GDPR Art. 17(3): erasure is not owed, on this basis; the refusal notice must follow."""
    if basis not in EXEMPTIONS:
        raise TakedownError(f"unknown basis {basis!r} (one of {', '.join(EXEMPTIONS)})")
    with ground_step(config, store, request_id, "gdpr", step="exempt") as (ledger, request):
        if ledger.state(request_id)["blocklisted"] is not None:
            raise TakedownError(f"{request_id} is already applied; its keys stay on the blocklist")
        return ledger.record(
            request_id,
            "exempted",
            summary=f"{EXEMPTIONS[basis]}: {required(reason, 'why (--reason)')}",
            happened_at=event_day(when, request, "decision date"),
            detail={"basis": basis},
        )


def refusal_notice(
    config: Config, store: Store, request_id: str, *, when: dt.date | None = None, note: str = ""
) -> Event:
    """GDPR Art. 12(4): the reasons for not acting, and the right to complain to a supervisory
    authority and to a judicial remedy, told to the requester."""
    with ground_step(config, store, request_id, "gdpr", step="refusal-notice") as (ledger, request):
        if not ledger.closed(request_id):
            raise TakedownError(f"{request_id} was neither rejected nor exempted")
        return ledger.record(
            request_id,
            "refusal_notified",
            summary=note or "reasons, supervisory-authority complaint and judicial remedy told",
            happened_at=event_day(when, request, "refusal notice date"),
            detail={"complaint": True, "judicial_remedy": True},
        )


def recipient(
    config: Config,
    store: Store,
    request_id: str,
    *,
    name: str | None,
    notified: dt.date | None,
) -> Event:
    """GDPR Art. 17(2)/19: one recipient of the data and when it was told (None: not yet);
    ``name`` None records that the data went to no one."""
    with opened_ledger(config, store) as ledger:
        request = ledger.get(request_id)
        if name is None:
            return ledger.record(
                request_id,
                "recipient",
                summary="the data was disclosed to no recipient",
                detail={"name": "(none)", "notified": today().isoformat()},
            )
        who = required(name, "who the recipient is (--name)")
        day = event_day(notified, request, "recipient notified date") if notified else None
        return ledger.record(
            request_id,
            "recipient",
            summary=f"{who}: notified {day}" if day else f"{who}: not notified yet",
            detail={"name": who, "notified": day},
        )


def redaction_due(ledger: Ledger, request_id: str, months: int) -> dt.date | None:
    """When the requester's data may go: ``months`` after the answer; None before an answer."""
    state = ledger.state(request_id)
    answers = [e for e in (state["notified"], state["refusal_notified"]) if e is not None]
    if not answers:
        return None
    answered = max(dt.date.fromisoformat(e.happened_at[:10]) for e in answers)
    return add_months(answered, months)


def redact(config: Config, store: Store, request_id: str, *, early: bool = False) -> Event:
    """Retention over: the contact and notes go, their hashes stay in the chain."""
    with opened_ledger(config, store) as ledger:
        ledger.get(request_id)
        if ledger.state(request_id)["redacted"] is not None:
            raise TakedownError(f"{request_id} is already redacted")
        due = redaction_due(ledger, request_id, config.takedown.personal_data_months)
        if due is None:
            raise TakedownError(f"{request_id} is not answered yet (notify or refusal-notice)")
        if due > today() and not early:
            raise TakedownError(f"{request_id} is kept until {due}; --early redacts it now")
        return ledger.record(
            request_id,
            "redacted",
            summary="requester's contact and notes redacted; their SHA-256 stay in the ledger",
            redact=True,
        )
