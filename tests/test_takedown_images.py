"""Takedown by image bytes: zip roots, the hash cache, and JSON Lines files kept as JSON Lines."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from takedown_world import TARGET, World, build, open_world

from audit import config as config_mod
from audit import takedown, takedown_steps
from audit.config import Config
from audit.loaders import imageroots
from audit.store import Store

pytestmark = pytest.mark.realdata


def _request(
    world: World, ground: str, requester: str, identifier: tuple[str, str]
) -> tuple[Config, Store, str]:
    """The world's config and store, with one request recorded: (config, store, request id)."""
    cfg, store = open_world(world)
    rid = takedown.new_request(
        cfg, store, ground=ground, requester_contact=requester, identifiers=[identifier]
    ).request_id
    return cfg, store, rid


def test_a_hash_request_finds_the_image_inside_a_zip_and_names_the_member(
    tmp_path: Path, realdata: Path
) -> None:
    world = build(tmp_path, realdata)
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(world.images.rglob("*.jpg")):
            zf.write(path, path.relative_to(world.images).as_posix())
    world.config.write_text(world.config.read_text().replace(str(world.images), str(archive)))
    sha = hashlib.sha256((world.images / TARGET).read_bytes()).hexdigest()
    cfg, store, rid = _request(world, "illegal_content", "hotline", ("sha256", sha.upper()))
    located = takedown.match(cfg, store, rid)
    chats = sorted((m.dataset, m.index) for m in located.matches if m.file.endswith("chat.json"))
    assert chats == [("lcs-a", 0), ("lcs-a", 5), ("lcs-b", 1), ("lcs-b", 4)]
    assert f"{archive}!{TARGET}" in located.image_files
    assert f"{archive}!{TARGET}" in takedown_steps.checklist(cfg, store, rid, "html")


def test_image_hashes_are_cached_until_the_file_changes(
    tmp_path: Path, realdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build(tmp_path, realdata)
    cfg, store, rid = _request(world, "copyright", "a", ("image", TARGET))
    reads: list[object] = []
    real_read = imageroots.read_source

    def counting(source: imageroots.Source) -> bytes:
        reads.append(source)
        return real_read(source)

    monkeypatch.setattr(imageroots, "read_source", counting)
    first = takedown.match(cfg, store, rid)
    assert len(reads) == 12  # each of the 12 distinct images once, though 19 records use them
    reads.clear()
    again = takedown.match(cfg, store, rid)
    assert reads == [] and again.matches == first.matches
    (world.images / "copies/00453-renamed.jpg").write_bytes(b"not the same bytes any more")
    third = takedown.match(cfg, store, rid)
    assert len(reads) == 1
    assert len(third.matches) == len(first.matches) - 1


def test_a_json_lines_file_gets_a_json_lines_cleaned_copy(tmp_path: Path, realdata: Path) -> None:
    world = build(tmp_path, realdata, with_images=False)
    records = json.loads(world.a_chat.read_text())
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    world.a_chat.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg, store, rid = _request(world, "gdpr", "a", ("image", TARGET))
    takedown.apply(cfg, store, rid)
    cleaned = takedown.cleaned_path(world.a_chat, rid).read_text(encoding="utf-8")
    assert cleaned == "".join(line + "\n" for i, line in enumerate(lines) if i not in (0, 5))


def test_a_missing_image_root_does_not_stop_the_audit(tmp_path: Path, realdata: Path) -> None:
    world = build(tmp_path, realdata)
    sha = hashlib.sha256((world.images / TARGET).read_bytes()).hexdigest()
    cfg, store, rid = _request(world, "copyright", "a", ("sha256", sha))
    takedown.apply(cfg, store, rid)
    toml = world.config.read_text().replace(str(world.images), str(tmp_path / "gone"), 1)
    world.config.write_text(toml)  # lcs-a's image root is gone; lcs-b's is still there
    result = takedown.blocklist_findings(config_mod.load(world.config), store)
    # The paths learnt at apply time still find every record, with or without the bytes.
    assert sorted((f.dataset, f.file, f.index) for f in result.findings) == sorted(
        (d, str(f), i) for d, f, i, _ in world.affected
    )
