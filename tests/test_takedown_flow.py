"""The takedown workflow end to end on real LCS-558K records: match, apply, checklist, verify, and
the audit that fails when the image comes back."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from takedown_world import TARGET, TARGET_URL, build, dump, open_world

from audit import takedown, takedown_clean, takedown_gdpr, takedown_steps
from audit.checks.takedown import BlockKey
from audit.config import Config
from audit.errors import OutputError, TakedownError
from audit.store import Store
from audit.store.ledger import Ledger
from audit.store.ledgerfile import opened_ledger

pytestmark = pytest.mark.realdata


def _digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def _new(cfg: Config, store: Store, *ids: tuple[str, str], ground: str = "gdpr") -> str:
    return takedown.new_request(
        cfg,
        store,
        ground=ground,
        requester_contact="rights@example.org",
        identifiers=ids,
        received=dt.date(2025, 11, 2),
        datasets=["lcs-a"],
    ).request_id


def test_one_image_in_two_datasets_is_found_removed_listed_and_kept_out(
    tmp_path: Path, realdata: Path
) -> None:
    world = build(tmp_path, realdata)
    cfg, store = open_world(world)
    originals = _digest(world.a_chat, world.b_chat, world.b_meta)
    rid = _new(cfg, store, ("image", TARGET))

    located = takedown.match(cfg, store, rid)
    expected = [(d, str(f), i, r) for d, f, i, r in world.affected]
    found = sorted((m.dataset, m.file, m.index, m.record_id) for m in located.matches)
    assert found == sorted(expected)
    assert str(world.images / "copies/00453-renamed.jpg") in located.image_files  # found by hash

    applied = takedown.apply(cfg, store, rid)
    assert applied.removed == len(expected)
    assert _digest(world.a_chat, world.b_chat, world.b_meta) == originals  # never touched
    for original in (world.a_chat, world.b_chat, world.b_meta):
        before = json.loads(original.read_text())
        after = json.loads(takedown.cleaned_path(original, rid).read_text())
        gone = {i for _, f, i, _ in world.affected if f == original}
        assert after == [r for i, r in enumerate(before) if i not in gone]  # exactly those
    manifest = json.loads(Path(applied.manifest).read_text())
    rows = [
        (f["original"], r["index"], r["record_id"]) for f in manifest["files"] for r in f["removed"]
    ]
    assert sorted(rows) == sorted((str(f), i, r) for _, f, i, r in world.affected)
    assert {r["matched_key"] for f in manifest["files"] for r in f["removed"]} >= {
        f"image={TARGET}"
    }
    assert f"url={TARGET_URL.replace('http:', 'https:')}" in manifest["blocklist"]  # canonical

    md = takedown_steps.checklist(cfg, store, rid, "md", today=dt.date(2025, 11, 20))
    for _, f, _, record_id in world.affected:
        assert record_id in md and str(f).replace("_", "\\_") in md
    assert "12 day(s) left" in md and "2025-12-02" in md
    assert "| Removed (cleaned copies written) | done |" in md
    assert "| Requester notified | pending |" in md

    # The configured datasets still point at the originals: the audit fails until they are swapped.
    result = takedown.blocklist_findings(cfg, store)
    assert {f.code for f in result.findings} == {"takedown.present"}
    assert sorted((f.file, f.index) for f in result.findings) == sorted(
        (str(f), i) for _, f, i, _ in world.affected
    )
    assert not takedown.verify(cfg, store, rid).ok

    for original in (world.a_chat, world.b_chat, world.b_meta):
        shutil.copyfile(takedown.cleaned_path(original, rid), original)
    assert takedown.blocklist_findings(cfg, store).findings == []
    # The records are gone, the image files are not: not erased yet.
    still = takedown.verify(cfg, store, rid)
    assert not still.ok
    assert {str(p) for p in still.images} == {
        str(world.images / TARGET),
        str(world.images / "copies/00453-renamed.jpg"),
    }
    again = takedown.apply(cfg, store, rid, images="folder")
    assert again.already_applied and again.images_left == []
    assert not (world.images / TARGET).exists()
    assert takedown.verify(cfg, store, rid, purge_held=True).ok  # and the quarantine emptied
    takedown_gdpr.identity(cfg, store, rid, verified=True, method="reply from the address")
    takedown_gdpr.recipient(cfg, store, rid, name=None, notified=None)
    takedown_steps.release(cfg, store, rid, versions_affected=["v1"], new_version="v2")
    takedown_steps.notify(cfg, store, rid, when=dt.date(2025, 11, 21), note="mailed the requester")
    md = takedown_steps.checklist(cfg, store, rid, "md", today=dt.date(2025, 11, 22))
    assert "met: requester notified on 2025-11-21" in md and "Nothing: every step is done." in md

    # Put the image back, under its own path in a record of dataset b: the next audit fails.
    records = json.loads(world.b_chat.read_text())
    records.append({**records[0], "image": TARGET})
    dump(world.b_chat, records)
    back = takedown.blocklist_findings(cfg, store).findings
    assert [(f.code, f.severity.value, f.dataset, f.index) for f in back] == [
        ("takedown.present", "error", "lcs-b", len(records) - 1)
    ]
    assert rid in back[0].message


def test_a_url_request_finds_the_image_through_the_metadata(tmp_path: Path, realdata: Path) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg, store = open_world(world)
    rid = _new(cfg, store, ("url", TARGET_URL))
    located = takedown.match(cfg, store, rid)
    assert sorted((m.dataset, m.file, m.index) for m in located.matches) == sorted(
        (d, str(f), i) for d, f, i, _ in world.affected
    )
    assert BlockKey("image", TARGET) in located.keys


def test_a_crash_after_match_loses_nothing_and_apply_resumes(
    tmp_path: Path, realdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg, store = open_world(world)
    rid = _new(cfg, store, ("image", TARGET))
    takedown.match(cfg, store, rid)
    calls = []
    real_write = takedown_clean.write_atomic

    def write_then_die(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError("killed mid-apply")
        real_write(path, data)

    monkeypatch.setattr(takedown_clean, "write_atomic", write_then_die)
    with pytest.raises(OutputError, match="killed"):  # one line naming the copy, exit 3
        takedown.apply(cfg, store, rid)
    store.close()
    monkeypatch.undo()

    cfg, store = open_world(world)  # a fresh process
    with opened_ledger(cfg, store) as ledger:
        state = ledger.state(rid)
        assert state["located"] is not None and state["removed"] is None
        assert ledger.blocklist() == []
    assert "takedown apply" in takedown_steps.checklist(cfg, store, rid)
    applied = takedown.apply(cfg, store, rid)
    assert applied.removed == len(world.affected)
    with opened_ledger(cfg, store) as ledger:
        assert [e.step for e in ledger.events(rid)] == ["located", "removed", "blocklisted"]


def test_a_pending_request_and_an_applied_one_both_fail(tmp_path: Path, realdata: Path) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg, store = open_world(world)
    assert takedown.blocklist_findings(cfg, store).blocklist_keys == 0
    rid = _new(cfg, store, ("record_id", "002239345"), ground="copyright")
    pending = takedown.blocklist_findings(cfg, store).findings
    assert [(f.code, f.index) for f in pending] == [("takedown.pending", 1)]
    takedown.apply(cfg, store, rid)
    assert [f.code for f in takedown.blocklist_findings(cfg, store).findings] == [
        "takedown.present"
    ]
    only_b = takedown.blocklist_findings(cfg, store, datasets=["lcs-b"])
    assert only_b.findings == []


@pytest.mark.parametrize(
    ("ids", "datasets", "message"),
    [
        ([("sha256", "1234")], [], "bad identifier: sha256 must be 64 hexadecimal digits"),
        ([("url", "ec1.ostkcdn.com/x.jpg")], [], "bad identifier: not an absolute URL"),
        ([("image", TARGET)], ["lcs-c"], "unknown dataset 'lcs-c'.*lcs-a, lcs-b"),
        ([], [], "at least one identifier"),
    ],
)
def test_bad_requests_are_refused_before_anything_is_written(
    tmp_path: Path, realdata: Path, ids: list[tuple[str, str]], datasets: list[str], message: str
) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg, store = open_world(world)
    with pytest.raises(TakedownError, match=message):
        takedown.new_request(
            cfg, store, ground="gdpr", requester_contact="a@b", identifiers=ids, datasets=datasets
        )
    with opened_ledger(cfg, store) as ledger:
        assert ledger.requests() == []


def test_verify_before_apply_and_unknown_ids_are_clear_errors(
    tmp_path: Path, realdata: Path
) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg, store = open_world(world)
    with pytest.raises(TakedownError, match="unknown takedown request 'TD-0042'"):
        takedown.match(cfg, store, "TD-0042")
    rid = _new(cfg, store, ("image", TARGET))
    with pytest.raises(TakedownError, match="not applied yet"):
        takedown.verify(cfg, store, rid)


def test_a_crash_between_removed_and_blocklisted_is_visible_and_resumable(
    tmp_path: Path, realdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg, store = open_world(world)
    rid = _new(cfg, store, ("image", TARGET))
    real_record = Ledger.record

    def die_before_blocklisting(self: Ledger, request_id: str, step: str, **kw: object) -> object:
        if step == "blocklisted":
            raise KeyboardInterrupt
        return real_record(self, request_id, step, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Ledger, "record", die_before_blocklisting)
    with pytest.raises(KeyboardInterrupt):
        takedown.apply(cfg, store, rid)
    monkeypatch.undo()
    with opened_ledger(cfg, store) as ledger:
        state = ledger.state(rid)
    assert state["removed"] is not None and state["blocklisted"] is None
    # Not blocklisted yet: the audit still fails (pending) instead of going quiet.
    assert {f.code for f in takedown.blocklist_findings(cfg, store).findings} == {
        "takedown.pending"
    }
    assert "| Blocklisted | pending |" in takedown_steps.checklist(cfg, store, rid)
    takedown.apply(cfg, store, rid)
    with opened_ledger(cfg, store) as ledger:
        assert ledger.state(rid)["blocklisted"] is not None
    assert {f.code for f in takedown.blocklist_findings(cfg, store).findings} == {
        "takedown.present"
    }


def test_a_rejected_request_stops_warning_and_cannot_be_applied(
    tmp_path: Path, realdata: Path
) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg, store = open_world(world)
    rid = _new(cfg, store, ("record_id", "002239345"), ground="gdpr")
    assert takedown.blocklist_findings(cfg, store).findings  # pending error
    with pytest.raises(TakedownError, match="say why"):
        takedown_steps.reject(cfg, store, rid, reason=" ")
    takedown_steps.reject(
        cfg, store, rid, reason="not the requester's own data (name only in alt text)"
    )
    assert takedown.blocklist_findings(cfg, store).findings == []
    with pytest.raises(TakedownError, match="was rejected"):
        takedown.apply(cfg, store, rid)
    md = takedown_steps.checklist(cfg, store, rid)
    assert "| Rejected | done |" in md and "takedown apply" not in md
    assert "takedown notify" in md  # the requester still gets an answer


def test_an_applied_request_cannot_be_rejected(tmp_path: Path, realdata: Path) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg, store = open_world(world)
    rid = _new(cfg, store, ("record_id", "002239345"))
    takedown.apply(cfg, store, rid)
    with pytest.raises(TakedownError, match="already applied"):
        takedown_steps.reject(cfg, store, rid, reason="changed our mind")
