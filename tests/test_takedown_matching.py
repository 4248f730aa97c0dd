"""Takedown matching beyond exact keys, and `verify` checking the image bytes themselves.

CC-3M records are the real ones from ../shared/realdata (ids renumbered so that a few lines of the
real CC-3M TSV hold their URLs, as line N of the TSV is GCC_train_N); COCO records point at real
images of the real COCO annotation excerpt. Image bytes are generated pictures (tests/imagefactory).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from imagefactory import photo, reencoded
from takedown_world import dump

from audit import config as config_mod
from audit import stages, takedown, takedown_steps
from audit.cli import main
from audit.config import Config
from audit.store import Store

pytestmark = pytest.mark.realdata

#: Line 0 of the real CC-3M TSV excerpt has this URL as https; requesters write it as http.
PINIMG = "i.pinimg.com/736x/66/01/6c/66016c3ba27c0e04f39e2bd81a934e3e--anita-ekberg-bob-hope.jpg"
TARGET = "GCC_train_000000000.jpg"


@dataclass
class Cc3m:
    config: Path
    chat: Path
    zip: Path
    folder: Path


def _cc3m(tmp_path: Path, realdata: Path, *, tsv: bool = True, roots: str = "zip+folder") -> Cc3m:
    """A CC-3M dataset: chat.json, the CC-3M TSV, images.zip (members under images/) and a
    folder holding another copy of the first image."""
    real = json.loads((realdata / "cc3m_chat_samples.json").read_text(encoding="utf-8"))
    records = [
        {**r, "id": f"GCC_train_{i:09d}", "image": f"GCC_train_{i:09d}.jpg"}
        for i, r in enumerate(real)
    ]
    data = tmp_path / "cc3m"
    data.mkdir()
    dump(data / "chat.json", records)
    lines = (realdata / "gcc_tsv_samples.tsv").read_text(encoding="utf-8").splitlines()
    (data / "Train_GCC-training.tsv").write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    archive = data / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(len(records)):
            zf.writestr(f"images/GCC_train_{i:09d}.jpg", photo(i))
    folder = data / "images"
    folder.mkdir()
    (folder / TARGET).write_bytes(photo(0))
    listed = {"zip+folder": [archive, folder], "zip": [archive], "folder": [folder]}[roots]
    config = tmp_path / "audit.toml"
    config.write_text(
        'state = "state/audit.sqlite"\n\n[[datasets]]\nname = "cc3m"\nkind = "cc3m-chat"\n'
        'chat = "cc3m/chat.json"\n'
        + ('url_tsv = "cc3m/Train_GCC-training.tsv"\n' if tsv else "")
        + f"images = {json.dumps([str(p) for p in listed])}\n",
        encoding="utf-8",
    )
    return Cc3m(config, data / "chat.json", archive, folder)


def _open(path: Path) -> tuple[Config, Store]:
    cfg = config_mod.load(path)
    return cfg, Store(cfg.path(cfg.state))


def _new(cfg: Config, store: Store, ground: str, *ids: tuple[str, str]) -> str:
    return takedown.new_request(
        cfg, store, ground=ground, requester_contact="rights@example.org", identifiers=ids
    ).request_id


def _mine(located: takedown.Located) -> list[tuple[str, int]]:
    return sorted(
        (Path(m.file).name, m.index) for m in located.matches if m.request_id == located.request_id
    )


def test_an_http_url_finds_the_https_record_through_the_cc3m_tsv_and_verify_checks_the_bytes(
    tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _cc3m(tmp_path, realdata)
    cfg, store = _open(world.config)
    rid = _new(cfg, store, "gdpr", ("url", f"http://{PINIMG}"))

    located = takedown.match(cfg, store, rid)
    assert _mine(located) == [("chat.json", 0)]  # TSV line 0 is GCC_train_000000000
    assert {f.role for f in located.files} == {"chat", "lookup"}  # the TSV: read, not cleaned

    applied = takedown.apply(cfg, store, rid)  # the records only (the default)
    manifest = json.loads(Path(applied.manifest).read_text())
    (row,) = [r for f in manifest["files"] for r in f["removed"]]
    assert row["image_file"] == f"{world.zip}!images/{TARGET}"  # the member's real name
    assert sorted(applied.images_left) == sorted(
        [f"{world.zip}!images/{TARGET}", str(world.folder / TARGET)]
    )
    shutil.copyfile(takedown.cleaned_path(world.chat, rid), world.chat)

    # The record is gone; the photo is still in the zip and the folder: not erased.
    code = main(["takedown", "verify", "--config", str(world.config), rid])
    out = capsys.readouterr().out
    assert code == 1 and "not clean" in out
    assert f"image still present: {world.zip}!images/{TARGET}" in out
    assert f"image still present: {world.folder / TARGET}" in out
    assert f"Remove them: llava-audit takedown apply {rid} --images all" in out
    md = takedown_steps.checklist(cfg, store, rid)
    assert "| Re-audited | failed |" in md and "every step is done" not in md

    others = {n: zipfile.ZipFile(world.zip).read(n) for n in zipfile.ZipFile(world.zip).namelist()}
    code = main(["takedown", "apply", "--config", str(world.config), rid, "--images", "all"])
    out = capsys.readouterr().out
    assert code == 0 and f"kept as {world.zip}.{rid}.orig" in out
    with zipfile.ZipFile(world.zip) as zf:  # rewritten without the member, the rest unchanged
        assert {n: zf.read(n) for n in zf.namelist()} == {
            n: b for n, b in others.items() if n != f"images/{TARGET}"
        }
    with zipfile.ZipFile(f"{world.zip}.{rid}.orig") as zf:
        assert f"images/{TARGET}" in zf.namelist()  # kept until the takedown is verified
    quarantined = list((tmp_path / "takedowns" / rid / "quarantine").rglob(TARGET))
    assert len(quarantined) == 1 and not (world.folder / TARGET).exists()

    verified = takedown.verify(cfg, store, rid)
    assert verified.ok and verified.images == [] and len(verified.held) == 2
    assert "verify " + rid + " --purge" in takedown_steps.checklist(cfg, store, rid)
    purged = takedown.verify(cfg, store, rid, purge_held=True)
    assert purged.ok and len(purged.purged) == 2
    assert not Path(f"{world.zip}.{rid}.orig").exists()
    assert not (tmp_path / "takedowns" / rid / "quarantine").exists()
    assert "| Quarantine and old zips deleted | done |" in takedown_steps.checklist(cfg, store, rid)


def test_a_dmca_notice_naming_a_flickr_photo_page_finds_the_coco_records(
    tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """COCO's annotations map flickr_url to file_name; the notice names the photo page."""
    coco = json.loads((realdata / "coco_licenses.json").read_text(encoding="utf-8"))
    first, second = coco["images"][:2]  # 3176652494 is first's Flickr photo id
    assert "/3176652494_" in first["flickr_url"]
    real = json.loads((realdata / "instruct_samples.json").read_text(encoding="utf-8"))[0]
    instruct = [
        {**real, "id": img["file_name"][:-4], "image": img["file_name"]} for img in (first, second)
    ]
    mix = [{**real, "id": "m1", "image": f"coco/train2017/{first['file_name']}"}]
    (tmp_path / "data").mkdir()
    dump(tmp_path / "data/instruct.json", instruct)
    dump(tmp_path / "data/mix.json", mix)
    config = tmp_path / "audit.toml"
    config.write_text(
        'state = "s/audit.sqlite"\n\n[[datasets]]\nname = "instruct"\nkind = "instruct"\n'
        f'chat = "data/instruct.json"\ncoco_annotations = "{realdata / "coco_licenses.json"}"\n\n'
        '[[datasets]]\nname = "mix"\nkind = "mix"\nchat = "data/mix.json"\n',
        encoding="utf-8",
    )
    cfg = ["--config", str(config)]
    page = "https://www.flickr.com/photos/some-photographer/3176652494/"
    assert main(["takedown", "new", *cfg, "--ground", "copyright", "--contact", "a@b",
                 "--url", page]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["takedown", "match", *cfg, "TD-0001"]) == 0
    out = capsys.readouterr().out
    assert "2 affected record(s)" in out and "Next: llava-audit takedown apply TD-0001" in out
    assert "searched 3 records in 2 file(s) (and 1 lookup file(s)" in out
    c, store = _open(config)
    located = takedown.match(c, store, "TD-0001")
    assert _mine(located) == [("instruct.json", 0), ("mix.json", 0)]


def test_a_request_known_only_by_sha256_is_found_removed_and_verified(
    tmp_path: Path, realdata: Path
) -> None:
    world = _cc3m(tmp_path, realdata, tsv=False, roots="folder")
    (world.folder / "GCC_train_000000002.jpg").write_bytes(photo(2))
    cfg, store = _open(world.config)
    sha = hashlib.sha256(photo(2)).hexdigest()
    rid = _new(cfg, store, "illegal_content", ("sha256", sha))
    assert _mine(takedown.match(cfg, store, rid)) == [("chat.json", 2)]
    takedown.apply(cfg, store, rid, images="folder")
    assert not (world.folder / "GCC_train_000000002.jpg").exists()
    assert not takedown.verify(cfg, store, rid).ok  # the record is still in chat.json
    shutil.copyfile(takedown.cleaned_path(world.chat, rid), world.chat)
    assert takedown.verify(cfg, store, rid).ok


def test_the_picture_a_requester_sends_finds_the_record_by_perceptual_hash(
    tmp_path: Path, realdata: Path
) -> None:
    world = _cc3m(tmp_path, realdata, tsv=False, roots="zip")
    sent = tmp_path / "screenshot.jpg"
    sent.write_bytes(reencoded(photo(3), quality=50, scale=0.5))  # not the bytes in the zip
    cfg, store = _open(world.config)
    rid = takedown.new_request(
        cfg, store, ground="gdpr", requester_contact="a@b", identifiers=[], image_files=[sent]
    ).request_id
    located = takedown.match(cfg, store, rid)
    assert _mine(located) == [("chat.json", 3)]
    kinds = {k.kind: k for k in located.keys}  # the sent picture's hashes, and what they found
    assert set(kinds) == {"sha256", "md5", "phash", "image"}
    assert kinds["image"].value == "GCC_train_000000003.jpg"


def test_a_reencoded_copy_under_a_new_id_is_caught_by_the_next_run(
    tmp_path: Path,
    realdata: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = _cc3m(tmp_path, realdata, tsv=False, roots="folder")
    for i in range(1, 5):
        (world.folder / f"GCC_train_{i:09d}.jpg").write_bytes(photo(i))
    cfg, store = _open(world.config)
    rid = _new(cfg, store, "copyright", ("image", TARGET))
    takedown.apply(cfg, store, rid, images="folder")
    shutil.copyfile(takedown.cleaned_path(world.chat, rid), world.chat)
    assert takedown.verify(cfg, store, rid).ok
    blocklist = tmp_path / "blocklist.json"
    assert (
        main(["takedown", "export-blocklist", "--config", str(world.config), str(blocklist)]) == 0
    )
    assert "phash" in {k["type"] for k in json.loads(blocklist.read_text())["keys"]}
    store.close()

    # The photo comes back: saved again at another quality and size, under a new id and name.
    records = json.loads(world.chat.read_text(encoding="utf-8"))
    records.append({**records[0], "id": "GCC_train_000000042", "image": "GCC_train_000000042.jpg"})
    dump(world.chat, records)
    back = reencoded(photo(0), quality=40, scale=0.7)
    assert hashlib.sha256(back).digest() != hashlib.sha256(photo(0)).digest()
    (world.folder / "GCC_train_000000042.jpg").write_bytes(back)
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "expectations", _skipped)  # not the point here
    code = main(["run", "--config", str(world.config)])
    capsys.readouterr()
    assert code == 1
    (findings,) = (tmp_path / "reports").glob("*/findings.jsonl*")
    raw = findings.read_bytes()
    lines = (gzip.decompress(raw) if findings.suffix == ".gz" else raw).decode().splitlines()
    present = [f for f in map(json.loads, lines) if f["code"] == "takedown.present"]
    assert [(f["record_id"], f["index"]) for f in present] == [
        ("GCC_train_000000042", len(records) - 1)
    ]
    assert "phash=" in present[0]["message"] and rid in present[0]["message"]


def _skipped(ctx: stages.StageContext) -> object:
    raise stages.StageSkipped("skipped by the test")


@pytest.mark.parametrize(
    ("name", "content", "code", "message"),
    [
        ("notes.txt", b"not a picture", 2, "not an image that can be decoded (--image-file)"),
        ("missing.jpg", None, 3, "request image not found"),
        ("/dev/zero", None, 3, "request image is a character device, not a regular file"),
    ],
)
def test_a_request_image_that_is_not_one_is_one_line(
    tmp_path: Path,
    realdata: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    code: int,
    message: str,
) -> None:
    world = _cc3m(tmp_path, realdata, tsv=False, roots="zip")
    path = tmp_path / name if not name.startswith("/") else Path(name)
    if content is not None:
        path.write_bytes(content)
    argv = ["takedown", "new", "--config", str(world.config), "--ground", "gdpr"]
    assert main([*argv, "--contact", "a@b", "--image-file", str(path)]) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_damaged_zip_is_left_as_it_was_and_no_copy_is_kept(
    tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _cc3m(tmp_path, realdata, tsv=False, roots="zip")
    with zipfile.ZipFile(world.zip) as zf:
        kept = zf.getinfo("images/GCC_train_000000001.jpg")  # a member the rewrite must copy
    data = bytearray(world.zip.read_bytes())
    data[kept.header_offset + 30 + len(kept.filename) + 100] ^= 0xFF  # its CRC no longer holds
    world.zip.write_bytes(bytes(data))
    cfg = ["--config", str(world.config)]
    main(["takedown", "new", *cfg, "--ground", "gdpr", "--contact", "a@b", "--image", TARGET])
    assert main(["takedown", "apply", *cfg, "TD-0001", "--images", "zip"]) == 3
    err = capsys.readouterr().err
    assert "cannot rewrite the zip: a member is damaged" in err and "Traceback" not in err
    assert world.zip.read_bytes() == bytes(data)
    assert not Path(f"{world.zip}.TD-0001.orig").exists()


def test_pictures_without_structure_get_no_perceptual_hash() -> None:
    """One colour or a smooth gradient hash alike (most DCT terms zero): never a match by picture."""
    import random

    from audit import demodata
    from audit.takedown_phash import perceptual_hash

    gradients = [perceptual_hash(demodata.jpeg(random.Random(seed))) for seed in range(5)]
    assert gradients == [None] * 5
    assert perceptual_hash(b"not an image") is None
    pictures = {perceptual_hash(photo(seed)) for seed in range(5)}
    assert len(pictures) == 5 and all(p and len(p) == 16 for p in pictures)
