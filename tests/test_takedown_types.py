"""The takedown results the CLI and the checklist read are typed (issue 9), and what they write
to disk (the manifest, the ledger events' details) keeps the keys it always had."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import msgspec
import pytest
from takedown_world import TARGET, build, open_world

from audit import takedown
from audit.store.ledgerfile import opened_ledger

pytestmark = pytest.mark.realdata

FILE_KEYS = {
    "dataset",
    "role",
    "original",
    "cleaned",
    "records_before",
    "records_after",
    "removed_for_request",
    "removed",
}
REMOVED_KEYS = {"index", "record_id", "image", "url", "matched_key", "request_id", "image_file"}


def test_apply_and_verify_return_fields_and_write_the_same_keys(
    tmp_path: Path, realdata: Path
) -> None:
    world = build(tmp_path, realdata)
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # one root a zip, the copy a folder: both removals
        zf.write(world.images / TARGET, TARGET)
    (world.images / TARGET).unlink()
    toml = world.config.read_text().replace(
        f'"{world.images}"', f'"{archive}", "{world.images}"', 1
    )
    world.config.write_text(toml)
    cfg, store = open_world(world)
    rid = takedown.new_request(
        cfg,
        store,
        ground="gdpr",
        requester_contact="a@example.org",
        identifiers=[("image", TARGET)],
    ).request_id

    located = takedown.match(cfg, store, rid)
    assert located.images.hashed > 0 and {f.role for f in located.files} == {"chat", "metadata"}
    applied = takedown.apply(cfg, store, rid, images="all")
    assert applied.images is not None and applied.images.mode == "all"
    (rewrite,) = applied.images.zips
    assert rewrite.zip == str(archive) and rewrite.members == [TARGET]
    assert [q.from_ for q in applied.images.quarantined] == [
        str(world.images / "copies/00453-renamed.jpg")
    ]
    assert sum(f.removed_for_request for f in applied.files) == applied.removed
    assert {r.matched_key for f in applied.files for r in f.removed} >= {f"image={TARGET}"}

    manifest = json.loads(Path(applied.manifest).read_text())
    assert set(manifest) == {"request_id", "written_at", "files", "blocklist", "images"}
    assert all(set(f) == FILE_KEYS for f in manifest["files"])
    assert all(set(r) == REMOVED_KEYS for f in manifest["files"] for r in f["removed"])
    assert manifest["files"] == msgspec.to_builtins(applied.files)
    assert manifest["images"] == {
        "mode": "all",
        "zips": [{"zip": str(archive), "kept_as": rewrite.kept_as, "members": [TARGET]}],
        "quarantined": [{"from": q.from_, "to": q.to} for q in applied.images.quarantined],
    }

    for f in applied.files:
        shutil.copyfile(f.cleaned, f.original)
    Path(applied.files[0].cleaned).unlink()  # moved into place: no leftovers to count
    verified = takedown.verify(cfg, store, rid)
    assert verified.ok
    assert [(c.exists, c.leftovers) for c in verified.cleaned][:2] == [(False, None), (True, 0)]

    with opened_ledger(cfg, store) as ledger:
        events = {e.step: e.detail for e in ledger.events(rid)}
    assert all(set(f) == FILE_KEYS - {"removed"} for f in events["removed"]["files"])
    assert events["images_removed"] == manifest["images"]
    assert all(set(f) == {"dataset", "role", "file", "records"} for f in events["located"]["files"])
    assert events["located"]["images"] == msgspec.to_builtins(located.images)
    assert [set(c) for c in events["reaudited"]["cleaned"]][:2] == [
        {"cleaned", "original", "exists"},
        {"cleaned", "original", "exists", "leftovers"},
    ]
