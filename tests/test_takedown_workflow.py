"""The steps each ground requires are ledger events and checklist rows; dates are validated;
exports verify; the published blocklist holds only hashes; restore lifts keys by an event."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import textwrap
from pathlib import Path

import pytest
from lcs_records import lcs_records

from audit import config as config_mod
from audit import takedown, takedown_export, takedown_gdpr, takedown_steps
from audit.cli import main
from audit.config import Config
from audit.errors import TakedownError
from audit.store import Store
from audit.store.ledgerfile import opened_ledger

RECORDS = lcs_records(5)
URL = "https://Example.org/photos/me.jpg"
TODAY = dt.date.today()
RECEIVED = TODAY - dt.timedelta(days=45)  # its one-month GDPR deadline has passed


@pytest.fixture
def world(tmp_path: Path) -> tuple[Config, Store]:
    records = [dict(r) for r in RECORDS]
    records[2]["url"] = URL
    (tmp_path / "chat.json").write_text(json.dumps(records), encoding="utf-8")
    (tmp_path / "shards").mkdir()
    (tmp_path / "audit.toml").write_text(
        textwrap.dedent(
            """
            state = ".cache/state.sqlite"
            [takedown]
            ledger = "legal/ledger.sqlite"
            [[datasets]]
            name = "lcs"
            kind = "lcs-chat"
            chat = "chat.json"
            [[derived]]
            name = "shards-v1"
            kind = "shard"
            path = "shards"
            [[derived]]
            name = "ckpt"
            kind = "checkpoint"
            path = "ckpt.bin"
            """
        ),
        encoding="utf-8",
    )
    config = config_mod.load(tmp_path / "audit.toml")
    return config, Store(config.path(config.state))


def _new(config: Config, store: Store, ground: str, *ids: tuple[str, str]) -> str:
    return takedown.new_request(
        config,
        store,
        ground=ground,
        requester_contact="jane@example.org",
        identifiers=ids,
        received=RECEIVED,
        notes="it is me in the photo",
    ).request_id


def _md(config: Config, store: Store, rid: str, today: dt.date = TODAY) -> str:
    return takedown_steps.checklist(config, store, rid, "md", today=today)


def test_gdpr_steps_are_events_and_checklist_rows(world: tuple[Config, Store]) -> None:
    config, store = world
    rid = _new(config, store, "gdpr", ("record_id", RECORDS[2]["id"]))
    assert (config.path("legal/ledger.sqlite")).is_file()  # [takedown] ledger, not the cache
    md = _md(config, store, rid)
    assert "| Identity checked (Art. 12(6)) | pending |" in md
    assert "takedown identity" in md and "takedown recipient" in md
    takedown_gdpr.identity(config, store, rid, verified=True, method="reply from the address")
    takedown_gdpr.extend(config, store, rid, reason="many requests", when=RECEIVED)
    with pytest.raises(TakedownError, match="allows it once"):
        takedown_gdpr.extend(config, store, rid, reason="again")
    takedown.apply(config, store, rid)
    takedown_gdpr.recipient(config, store, rid, name="partner lab", notified=None)
    takedown_steps.derived(config, store, rid, name="shards-v1", state="rebuilt")
    md = _md(config, store, rid)
    assert "| Identity checked (Art. 12(6)) | done |" in md
    assert "| Deadline extended (Art. 12(3)) | done |" in md and "extended from" in md
    assert "| partner lab | not yet |" in md and "Tell the recipient partner lab" in md
    assert "| shards-v1 | shard |" in md and "| rebuilt |" in md
    assert "| ckpt | checkpoint |" in md and "derived TD-0001 --name ckpt" in md
    assert "Record the release without it" in md
    takedown_gdpr.recipient(config, store, rid, name="partner lab", notified=TODAY)
    takedown_steps.derived(config, store, rid, name="ckpt", state="kept", note="trained before")
    takedown_steps.release(
        config, store, rid, versions_affected=["v1.0"], new_version="v1.1", diff_url="https://d"
    )
    takedown_steps.notify(config, store, rid, when=TODAY)
    md = _md(config, store, rid)
    assert f"| partner lab | {TODAY} |" in md and "| Release recorded (§8.6) | done |" in md
    assert "v1.1 released without it (affected: v1.0)" in md
    assert "Requester's data | kept until" in md
    with opened_ledger(config, store) as ledger:
        steps = [e.step for e in ledger.events(rid)]
    assert steps[:2] == ["identity_checked", "extended"] and "recipient" in steps


def test_retention_redacts_the_requester_and_keeps_the_hash(world: tuple[Config, Store]) -> None:
    config, store = world
    rid = _new(config, store, "gdpr", ("record_id", RECORDS[0]["id"]))
    with pytest.raises(TakedownError, match="not answered yet"):
        takedown_gdpr.redact(config, store, rid)
    takedown_steps.notify(config, store, rid, when=TODAY)
    with pytest.raises(TakedownError, match=r"kept until .*--early"):
        takedown_gdpr.redact(config, store, rid)
    later = TODAY + dt.timedelta(days=40 * 31)
    assert "Redact the requester's data" in _md(config, store, rid, today=later)
    takedown_gdpr.redact(config, store, rid, early=True)
    with opened_ledger(config, store) as ledger:
        request = ledger.get(rid)
        assert request.requester_contact == "[redacted]" and request.notes == "[redacted]"
        (received,) = [r for r in ledger.rows() if r[2] == "received"]
    sha = hashlib.sha256(b"jane@example.org").hexdigest()
    assert sha in received[7]  # the hash stays in the chain
    assert "jane@example.org" not in _md(config, store, rid) and "redacted on" in _md(
        config, store, rid
    )


def test_gdpr_exemption_needs_a_refusal_notice(world: tuple[Config, Store]) -> None:
    config, store = world
    rid = _new(config, store, "gdpr", ("record_id", RECORDS[2]["id"]))
    takedown_gdpr.exempt(config, store, rid, basis="legal-claims", reason="pending litigation")
    md = _md(config, store, rid)
    assert "| Not erased (Art. 17(3)) | done |" in md and "Art. 17(3)(e)" in md
    assert "| Refusal notice sent (Art. 12(4)) | pending |" in md and "takedown apply" not in md
    assert takedown.blocklist_findings(config, store).findings == []  # exempted: not blocking
    takedown_gdpr.refusal_notice(config, store, rid, when=TODAY)
    assert "| Refusal notice sent (Art. 12(4)) | done |" in _md(config, store, rid)


def test_dmca_notice_check_counter_notice_and_restore_by_event(
    world: tuple[Config, Store],
) -> None:
    config, store = world
    rid = _new(config, store, "copyright", ("url", URL))
    takedown_steps.notice_check(config, store, rid, present=["signature", "work", "material"])
    md = _md(config, store, rid)
    assert "| Notice holds the §512(c)(3)(A) elements | failed |" in md
    assert "ask for contact, good-faith, accuracy" in md
    with pytest.raises(TakedownError, match="not applied"):
        takedown_steps.counter_notice(config, store, rid, received=TODAY)
    takedown.apply(config, store, rid)
    with opened_ledger(config, store) as ledger:
        assert {k.kind for k, _ in ledger.blocklist()} >= {"url"}
    start = TODAY - dt.timedelta(days=3)
    takedown_steps.counter_notice(config, store, rid, received=max(start, RECEIVED))
    with pytest.raises(TakedownError, match="no sooner than"):
        takedown_steps.restore(config, store, rid, reason="no suit")
    assert "unless the claimant has filed an action" in _md(config, store, rid)
    old = TODAY - dt.timedelta(days=19)
    takedown_steps.counter_notice(config, store, rid, received=old)  # a later event wins
    takedown_steps.restore(config, store, rid, reason="no court action notified")
    with opened_ledger(config, store) as ledger:
        assert ledger.blocklist() == []  # lifted by an event...
        restored = ledger.state(rid)["restored"]
        assert restored is not None and restored.detail["lifted"]  # ...that names the keys
        assert any(e.detail.get("blocklist") for e in ledger.events(rid))  # never deleted
    assert takedown.blocklist_findings(config, store).findings == []


def test_illegal_content_evidence_and_report(world: tuple[Config, Store]) -> None:
    config, store = world
    rid = _new(config, store, "illegal_content", ("record_id", RECORDS[1]["id"]))
    md = _md(config, store, rid)
    assert "| Evidence preserved | pending |" in md and "takedown preserve" in md
    takedown_steps.preserve(config, store, rid, where="sealed bucket (access-logged)")
    takedown_steps.report(config, store, rid, to="national hotline", reference="2026-1")
    md = _md(config, store, rid)
    assert "| Evidence preserved | done |" in md and "| Reported to the authority" in md
    with pytest.raises(TakedownError, match="applies to gdpr"):
        takedown_gdpr.identity(config, store, rid, verified=True, method="x")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c, s, r: takedown_steps.notify(c, s, r, when=TODAY + dt.timedelta(days=1)),
         "is in the future"),
        (lambda c, s, r: takedown_steps.notify(c, s, r, when=RECEIVED - dt.timedelta(days=1)),
         "before the request was received"),
        (lambda c, s, r: takedown_gdpr.recipient(c, s, r, name="x",
                                                  notified=RECEIVED - dt.timedelta(days=1)),
         "before the request was received"),
        (lambda c, s, r: takedown_gdpr.extend(c, s, r, reason="late", when=TODAY),
         "must be told to the requester by the deadline"),
    ],
)  # fmt: skip
def test_dates_are_validated(world: tuple[Config, Store], call: object, message: str) -> None:
    config, store = world
    rid = _new(config, store, "gdpr", ("record_id", RECORDS[0]["id"]))
    with pytest.raises(TakedownError, match=message):
        call(config, store, rid)  # type: ignore[operator]
    with pytest.raises(TakedownError, match="is in the future"):
        takedown.new_request(
            config,
            store,
            ground="gdpr",
            requester_contact="a",
            identifiers=[("record_id", "1")],
            received=TODAY + dt.timedelta(days=2),
        )


def test_export_verifies_and_a_tampered_export_does_not(
    world: tuple[Config, Store], tmp_path: Path
) -> None:
    config, store = world
    rid = _new(config, store, "gdpr", ("record_id", RECORDS[0]["id"]))
    takedown.apply(config, store, rid)
    out = tmp_path / "export.json"
    done = takedown_export.export(config, store, out)
    assert done.events == 4 and takedown_export.verify_export(out) is None
    body = json.loads(out.read_text())
    assert "jane@example.org" not in out.read_text()  # personal data stays out
    body["rows"][0]["happened_at"] = "2020-01-01"
    out.write_text(json.dumps(body))
    assert "does not match its hash" in (takedown_export.verify_export(out) or "")
    body = json.loads(out.read_text())
    body["rows"][0]["happened_at"] = RECEIVED.isoformat()
    body["rows"].pop()
    out.write_text(json.dumps(body))
    assert "ends before its recorded head" in (takedown_export.verify_export(out) or "")
    assert main(["takedown", "verify-export", str(out)]) == 1


def test_export_blocklist_publishes_hashes_only(
    world: tuple[Config, Store], tmp_path: Path
) -> None:
    config, store = world
    rid = _new(config, store, "copyright", ("url", URL))
    takedown.apply(config, store, rid)
    out = tmp_path / "blocklist.json"
    assert takedown_export.export_blocklist(config, store, out) == 1
    text = out.read_text()
    normalised = "https://example.org/photos/me.jpg"
    assert {"type": "url_sha256", "value": hashlib.sha256(normalised.encode()).hexdigest()} in (
        json.loads(text)["keys"]
    )
    assert "example.org" not in text.lower() and RECORDS[2]["id"] not in text


def test_apply_counts_its_own_records_and_hints_name_the_id(
    world: tuple[Config, Store], capsys: pytest.CaptureFixture[str]
) -> None:
    config, store = world
    first = _new(config, store, "copyright", ("record_id", RECORDS[0]["id"]))
    takedown.apply(config, store, first)
    second = _new(config, store, "copyright", ("record_id", RECORDS[1]["id"]))
    applied = takedown.apply(config, store, second)
    assert (applied.removed, applied.also_removed) == (1, 1)
    store.close()
    cfg = ["--config", str(config.path("audit.toml"))]
    third = ["takedown", "new", *cfg, "--ground", "gdpr", "--contact", "x", "--record-id", "nope"]
    assert main(third) == 0
    assert main(["takedown", "match", *cfg, "TD-0003"]) == 0
    out = capsys.readouterr().out
    assert "No record matched" in out and "takedown apply" not in out
    assert main(["takedown", "reject", *cfg, "TD-0003", "--reason", "no such record"]) == 0
    assert "llava-audit takedown notify TD-0003" in capsys.readouterr().out


def test_every_step_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for step in ("identity", "notice-check", "extend", "exempt", "refusal-notice", "recipient",
                 "counter-notice", "restore", "preserve", "report", "release", "derived",
                 "redact", "export", "verify-export", "export-blocklist", "new", "apply"):  # fmt: skip
        with pytest.raises(SystemExit):
            main(["takedown", step, "--help"])
        assert f"example:\n  llava-audit takedown {step}" in capsys.readouterr().out
