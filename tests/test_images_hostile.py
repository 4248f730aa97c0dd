"""Hostile image roots: symlinks out of the root, FIFOs and devices, NUL bytes, malformed zips.

Nothing outside a root may be opened, and no byte of any file may reach a finding, a report or a log.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import zipfile
from pathlib import Path

import imagefactory as make
import pytest

from audit.cli import main
from audit.errors import InputError
from audit.models import ImageRef
from audit.probes import imagedecode
from audit.probes.images import probe_images
from audit.store import Store

SECRET = b"root:*:19000:0:99999:7:::\n"


def refs_for(names: list[str]) -> list[ImageRef]:
    return [ImageRef(index=i, record_id=f"r{i}", image=name) for i, name in enumerate(names)]


def codes(result, refs: list[ImageRef]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    by_index = {f.index: f.code for f in result.findings if f.index is not None}
    return {ref.image: by_index[ref.index] for ref in refs if ref.index in by_index}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the root holding a 'password file' and an image nobody may read."""
    out = tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    (out / "shadow").write_bytes(SECRET)
    (out / "sub" / "a.jpg").write_bytes(make.jpeg())
    return out


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every source the probe reads bytes from."""
    seen: list[str] = []
    real = imagedecode.read_source

    def spy(source: tuple[object, ...]) -> bytes:
        seen.append(str(source[1]))
        return real(source)

    monkeypatch.setattr(imagedecode, "read_source", spy)
    return seen


def test_symlinks_leaving_the_root_are_path_findings_never_read(
    tmp_path: Path, outside: Path, opened: list[str]
) -> None:
    root = tmp_path / "root"
    (root / "deep" / "er").mkdir(parents=True)
    (root / "ok.jpg").write_bytes(make.jpeg())
    (root / "x.jpg").symlink_to(outside / "shadow")
    (root / "deep" / "er" / "y.jpg").symlink_to(outside / "shadow")
    (root / "coco").symlink_to(outside / "sub")  # a folder link at the top
    (root / "deep" / "linked").symlink_to(outside)  # and one further down
    (root / "rel.jpg").symlink_to(Path("..") / "outside" / "shadow")
    names = ["ok.jpg", "x.jpg", "deep/er/y.jpg", "coco/a.jpg", "coco/none.jpg"]
    names += ["deep/linked/sub/a.jpg", "deep/linked/shadow", "rel.jpg"]
    refs = refs_for(names)
    for level in ("exists", "decode"):
        result = probe_images(refs, [root], level=level, workers=1)
        assert codes(result, refs) == dict.fromkeys(names[1:], "image.path")
        assert all("outside" in f.message for f in result.findings if f.code == "image.path")
    assert not [path for path in opened if "outside" in path]


def test_symlinks_that_stay_inside_the_root_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.jpg").write_bytes(make.jpeg())
    (root / "real" / "t.jpg").write_bytes(make.truncated_jpeg())
    (root / "alias").symlink_to("real")
    (root / "b.jpg").symlink_to(root / "real" / "a.jpg")
    (root / "chain.jpg").symlink_to("b.jpg")
    linked_root = tmp_path / "linked-root"
    linked_root.symlink_to(root)  # the root itself may be a link (playground/data -> /data)
    refs = refs_for(["alias/a.jpg", "b.jpg", "chain.jpg", "alias/t.jpg"])
    for where in (root, linked_root):
        result = probe_images(refs, [where], level="decode", workers=1)
        assert codes(result, refs) == {"alias/t.jpg": "image.truncated"}


def test_the_folder_a_link_leads_to_can_be_a_root_of_its_own(tmp_path: Path, outside: Path) -> None:
    """playground/data/coco -> /datasets/coco: list /datasets as a root too."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "sub").symlink_to(outside / "sub")
    refs = refs_for(["sub/a.jpg", "sub/none.jpg"])
    result = probe_images(refs, [root, outside], workers=1)
    assert codes(result, refs) == {"sub/none.jpg": "image.path"}  # in no root: still refused


def test_a_zip_root_may_be_a_symlink(tmp_path: Path) -> None:
    zip_path = tmp_path / "store" / "images.zip"
    zip_path.parent.mkdir()
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("a.jpg", make.jpeg())
        zf.writestr("t.jpg", make.truncated_jpeg())
    (tmp_path / "images.zip").symlink_to(zip_path)
    refs = refs_for(["a.jpg", "t.jpg"])
    result = probe_images(refs, [tmp_path / "images.zip"], level="decode", workers=1)
    assert codes(result, refs) == {"t.jpg": "image.truncated"}


def test_a_full_run_still_reports_symlink_escapes_and_nul_bytes(
    tmp_path: Path, outside: Path
) -> None:
    """The structure stage sees only the path text: these are for the image stage to report."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "x.jpg").symlink_to(outside / "shadow")
    refs = refs_for(["x.jpg", "a\x00.jpg", "../up.jpg"])
    result = probe_images(refs, [root], workers=1, report_paths=False)
    assert codes(result, refs) == {"x.jpg": "image.path", "a\x00.jpg": "image.path"}


def test_a_nul_byte_in_an_image_path_is_one_finding_not_a_failed_stage(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jpg").write_bytes(make.jpeg())
    zip_path = tmp_path / "images.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("a.jpg", make.jpeg())
    refs = refs_for(["a\x00.jpg", "a.jpg", "sub/\x00/b.jpg"])
    for where in (root, zip_path):
        result = probe_images(refs, [where], workers=1)
        assert codes(result, refs) == {"a\x00.jpg": "image.path", "sub/\x00/b.jpg": "image.path"}
        assert result.status["ok"] == 1


def test_entries_that_are_not_regular_files_are_never_opened(
    tmp_path: Path, opened: list[str]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "fifo.jpg")
    (root / "zero.jpg").symlink_to("/dev/zero")
    (root / "fifo-link.jpg").symlink_to("fifo.jpg")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock.jpg"))
        names = ["fifo.jpg", "zero.jpg", "fifo-link.jpg", "sock.jpg"]
        refs = refs_for(names)
        for level in ("exists", "header", "decode"):
            result = probe_images(refs, [root], level=level, workers=1)
            assert codes(result, refs) == {
                "fifo.jpg": "image.unreadable",
                "zero.jpg": "image.path",  # resolves outside the root
                "fifo-link.jpg": "image.unreadable",
                "sock.jpg": "image.unreadable",
            }
    assert opened == []


def test_a_device_node_inside_the_root_is_unreadable(tmp_path: Path, opened: list[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    try:
        os.mknod(root / "zero.jpg", 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
    except OSError:
        pytest.skip("cannot create a device node here")
    refs = refs_for(["zero.jpg"])
    assert codes(probe_images(refs, [root], level="decode", workers=1), refs) == {
        "zero.jpg": "image.unreadable"
    }
    assert opened == []


def test_no_file_content_reaches_a_finding(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "text.jpg").write_bytes(SECRET)
    (root / "bad.ppm").write_bytes(b"P6\n" + SECRET * 3)  # Pillow's error quotes the header
    refs = refs_for(["text.jpg", "bad.ppm"])
    result = probe_images(refs, [root], level="decode", workers=1)
    assert codes(result, refs) == {"text.jpg": "image.corrupt", "bad.ppm": "image.corrupt"}
    for finding in result.findings:
        assert "root" not in finding.message.replace(str(root), "")


def test_a_cached_detail_quoting_file_bytes_is_not_repeated(tmp_path: Path) -> None:
    """Results cached by earlier versions quoted the first bytes of a file that is not an image."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "x.jpg").write_bytes(SECRET)
    refs = refs_for(["x.jpg"])
    state = tmp_path / "state.sqlite"
    with Store(state) as store:
        probe_images(refs, [root], store=store, workers=1)
    with sqlite3.connect(state) as conn:
        conn.execute("UPDATE image_probe SET detail = ?", (f"not an image ({SECRET[:16]!r})",))
    with Store(state) as store:
        again = probe_images(refs, [root], store=store, workers=1)
    assert again.cached == 1
    (finding,) = [f for f in again.findings if f.code == "image.corrupt"]
    assert "root" not in finding.message


def test_a_rerun_over_hostile_entries_decodes_nothing(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for i in range(3):
        (root / f"{i}.jpg").write_bytes(make.jpeg(seed=i))
    (root / "x.jpg").symlink_to(outside / "shadow")
    os.mkfifo(root / "f.jpg")
    refs = refs_for(["0.jpg", "1.jpg", "2.jpg", "x.jpg", "f.jpg", "a\x00.jpg"])
    with Store(tmp_path / "state.sqlite") as store:
        first = probe_images(refs, [root], level="decode", store=store, workers=1)
        second = probe_images(refs, [root], level="decode", store=store, workers=1)
    assert (first.probed, second.probed, second.cached) == (3, 0, 3)
    assert codes(second, refs) == codes(first, refs)


# ---- roots that are not folders or zips, and malformed zips ---------------------------------------


def zip64_zip(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small zip written with zip64 records, as images.zip (> 4 GB, > 65,535 members) has."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}.jpg", make.jpeg(seed=i))
    monkeypatch.undo()
    return path


def break_zip64_extra(raw: bytearray) -> None:
    """Cut the first central entry's zip64 extra field to no values (its sizes still say 'see zip64')."""
    entry = raw.index(b"PK\x01\x02")
    nlen = struct.unpack_from("<H", raw, entry + 28)[0]
    extra = entry + 46 + nlen
    assert struct.unpack_from("<H", raw, extra)[0] == 1  # the zip64 field
    struct.pack_into("<H", raw, extra + 2, 0)


def shift_eocd64(raw: bytearray, field_at: int, value: int) -> None:
    """Set a field of the zip64 end-of-central-directory record (28: count, 40: size, 48: offset)."""
    record = raw.rindex(b"PK\x06\x06")
    struct.pack_into("<Q", raw, record + field_at, value)


def set_eocd64_locator(raw: bytearray, value: int) -> None:
    struct.pack_into("<Q", raw, raw.rindex(b"PK\x06\x07") + 8, value)


MALFORMED = {
    "zip64 extra without values": break_zip64_extra,
    "central directory size past the end": lambda raw: shift_eocd64(raw, 40, 2**62),
    "central directory offset past the end": lambda raw: shift_eocd64(raw, 48, 2**63),
    "member count beyond the directory": lambda raw: shift_eocd64(raw, 32, 2**40),
    "zip64 record offset past 2**63": lambda raw: set_eocd64_locator(raw, 2**64 - 1),
}


@pytest.mark.parametrize("damage", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_central_directory_is_one_error_naming_the_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = zip64_zip(tmp_path / "images.zip", monkeypatch)
    raw = bytearray(path.read_bytes())
    MALFORMED[damage](raw)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"images\.zip: not a readable zip file"):
        probe_images(refs_for(["0.jpg"]), [path], workers=1)
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"id": "0", "image": "0.jpg", "conversations": []}]))
    assert main(["images", str(chat), "--root", str(path), "--no-cache"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "images.zip" in err


def test_a_malformed_zip_fails_only_the_images_stage_of_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit import config as config_mod
    from audit import stages
    from audit.runner import run_audit

    def skip(ctx: stages.StageContext) -> object:
        raise stages.StageSkipped("not the point here")

    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "expectations", skip)

    path = zip64_zip(tmp_path / "images.zip", monkeypatch)
    raw = bytearray(path.read_bytes())
    break_zip64_extra(raw)
    path.write_bytes(bytes(raw))
    record = {"id": "0", "image": "0.jpg", "conversations": [
        {"from": "human", "value": "<image>\nDescribe the image."},
        {"from": "gpt", "value": "a photo"},
    ]}  # fmt: skip
    (tmp_path / "chat.json").write_text(json.dumps([record]))
    (tmp_path / "audit.toml").write_text(
        '[[datasets]]\nname = "d"\nchat = "chat.json"\nimages = ["images.zip"]\n'
    )
    report = run_audit(config_mod.load(tmp_path / "audit.toml"))
    stage = report.datasets[0].stages["images"]
    assert stage.status == "failed"
    assert "images.zip: not a readable zip file" in stage.note
    assert report.datasets[0].stages["structure"].status == "ok"


@pytest.mark.parametrize("kind", ["fifo", "device", "text"])
def test_a_root_that_is_neither_folder_nor_zip_is_one_line_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"id": "0", "image": "0.jpg", "conversations": []}]))
    root = tmp_path / "root"
    if kind == "fifo":
        os.mkfifo(root)
    elif kind == "device":
        root = Path("/dev/zero")
    else:
        root.write_bytes(SECRET * 1000)
    with pytest.raises(InputError, match=r"not a readable zip file|not a folder or a zip file"):
        probe_images(refs_for(["0.jpg"]), [root], workers=1)
    assert main(["images", str(chat), "--root", str(root), "--no-cache"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(root) in err
    assert "root:*" not in err
