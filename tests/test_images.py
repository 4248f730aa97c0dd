"""Local image probe: real files and zips built here, broken the ways LLaVA users found them."""

from __future__ import annotations

import os
import posixpath
import zipfile
from pathlib import Path

import imagefactory as make
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.errors import InputError, StoreError, UsageError
from audit.loaders.imageroots import UnsafePathError, normalize
from audit.models import ImageRef
from audit.probes.images import probe_images
from audit.store import Store

GOOD = {
    "coco/train2017/000000000001.jpg": make.jpeg(seed=1),
    "coco/train2017/000000000002.jpg": make.jpeg(seed=2),
    "textvqa/train_images/a.png": make.png(),
}
BROKEN = {
    "ocr_vqa/images/140031996X.jpg": make.gif(),  # P5: GIF saved as .jpg
    "vg/VG_100K_2/214.jpg": b"",  # P7: empty VG files
    "ocr_vqa/images/1437717772.jpg": make.html_page(),
    "coco/train2017/000000000003.jpg": make.truncated_jpeg(),
}
EXPECTED_CODES = {
    "ocr_vqa/images/140031996X.jpg": "image.format_mismatch",
    "vg/VG_100K_2/214.jpg": "image.empty",
    "ocr_vqa/images/1437717772.jpg": "image.corrupt",
    "coco/train2017/000000000003.jpg": "image.truncated",
    "vg/VG_100K/497987.jpg": "image.missing",  # P8: missing from a downstream zip
}


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], prefix: str = "", **kw: object) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, **kw) as zf:  # type: ignore[arg-type]
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return path


def refs_for(names: list[str]) -> list[ImageRef]:
    return [ImageRef(index=i, record_id=f"r{i}", image=name) for i, name in enumerate(names)]


def codes_by_image(result, refs: list[ImageRef]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    by_index = {f.index: f.code for f in result.findings if f.index is not None}
    return {ref.image: by_index[ref.index] for ref in refs if ref.index in by_index}


ALL_NAMES = [*GOOD, *BROKEN, "vg/VG_100K/497987.jpg"]


@pytest.mark.parametrize("layout", ["folder", "zip", "zip-under-images"])
def test_each_defect_is_one_finding_on_its_record(tmp_path: Path, layout: str) -> None:
    files = {**GOOD, **BROKEN}
    if layout == "folder":
        root = write_tree(tmp_path / "data", files)
    else:
        prefix = "images/" if layout == "zip-under-images" else ""
        root = write_zip(tmp_path / "images.zip", files, prefix=prefix)
    refs = refs_for(ALL_NAMES)
    result = probe_images(refs, [root], level="decode", workers=1, dataset="mix", file="m.json")
    assert codes_by_image(result, refs) == EXPECTED_CODES
    one = next(f for f in result.findings if f.code == "image.truncated")
    assert (one.dataset, one.file, one.record_id, one.severity) == ("mix", "m.json", "r6", "error")
    assert result.referenced == 8
    fig = result.figures
    broken = {"image.empty", "image.truncated", "image.corrupt", "image.too_large"}
    assert fig.missing == 1 and fig.broken == sum(c in broken for c in EXPECTED_CODES.values())
    assert fig.unavailable == fig.missing + fig.broken
    assert fig.missing_rate == pytest.approx(1 / 8)
    assert msgspec.to_builtins(result.worst_folders) == {
        "ocr_vqa/images": {"referenced": 2, "missing": 0, "broken": 1},
        "vg/VG_100K_2": {"referenced": 1, "missing": 0, "broken": 1},
        "vg/VG_100K": {"referenced": 1, "missing": 1, "broken": 0},
        "coco/train2017": {"referenced": 3, "missing": 0, "broken": 1},
    }
    assert result.status == {
        "corrupt": 1,
        "empty": 1,
        "format_mismatch": 1,
        "missing": 1,
        "ok": 3,
        "truncated": 1,
    }


def test_gif_named_jpg_is_only_a_warning(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"ocr/1.jpg": make.gif()})
    result = probe_images(refs_for(["ocr/1.jpg"]), [root], level="decode", workers=1)
    (finding,) = [f for f in result.findings if f.code.startswith("image.")]
    assert finding.severity == "warning"
    assert "GIF" in finding.message


def test_truncation_needs_the_decode_level(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"t.jpg": make.truncated_jpeg(), "e.jpg": b""})
    refs = refs_for(["t.jpg", "e.jpg"])
    by_level = {
        level: codes_by_image(probe_images(refs, [root], level=level, workers=1), refs)
        for level in ("exists", "header", "decode")
    }
    assert by_level["exists"] == {"e.jpg": "image.empty"}
    assert by_level["header"] == {"e.jpg": "image.empty"}
    assert by_level["decode"] == {"e.jpg": "image.empty", "t.jpg": "image.truncated"}


def test_exists_level_never_opens_the_bytes(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"x.jpg": make.html_page()})
    result = probe_images(refs_for(["x.jpg", "y.jpg"]), [root], level="exists", workers=1)
    assert [f.code for f in result.findings if f.index is not None] == ["image.missing"]


def test_decompression_bombs_are_reported_without_decoding(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {"bomb.png": make.png_header(30_000, 30_000), "big.jpg": make.jpeg(64, 64)},
    )
    refs = refs_for(["bomb.png", "big.jpg"])
    result = probe_images(refs, [root], level="decode", workers=1, max_pixels=1000)
    assert codes_by_image(result, refs) == {
        "bomb.png": "image.too_large",
        "big.jpg": "image.too_large",
    }
    relaxed = probe_images(refs_for(["big.jpg"]), [root], level="decode", workers=1)
    assert not [f for f in relaxed.findings if f.code.startswith("image.")]


def test_first_root_that_has_the_image_wins(tmp_path: Path) -> None:
    first = write_zip(tmp_path / "a.zip", {"x.jpg": b""})
    second = write_tree(tmp_path / "b", {"x.jpg": make.jpeg(), "y.jpg": make.jpeg()})
    refs = refs_for(["x.jpg", "y.jpg"])
    assert codes_by_image(probe_images(refs, [first, second], workers=1), refs) == {
        "x.jpg": "image.empty"
    }
    assert codes_by_image(probe_images(refs, [second, first], workers=1), refs) == {}


@pytest.mark.parametrize("bad", ["../outside.jpg", "/etc/passwd", "a/../../outside.jpg", ""])
def test_paths_escaping_the_root_are_refused(tmp_path: Path, bad: str) -> None:
    (tmp_path / "outside.jpg").write_bytes(make.jpeg())
    root = write_tree(tmp_path / "root", {"in.jpg": make.jpeg()})
    refs = refs_for([bad])
    assert codes_by_image(probe_images(refs, [root], workers=1), refs) == {bad: "image.path"}


def test_damaged_zip_member_is_corrupt_not_a_crash(tmp_path: Path) -> None:
    data = make.jpeg(seed=9)
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.jpg", data)
        zf.writestr("b.jpg", data)
    raw = bytearray(path.read_bytes())
    at = raw.index(data) + len(data) // 2  # a flipped byte inside member a.jpg
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    refs = refs_for(["a.jpg", "b.jpg"])
    result = probe_images(refs, [path], level="header", workers=1)
    assert codes_by_image(result, refs) == {"a.jpg": "image.corrupt"}
    assert "CRC" in next(f.message for f in result.findings if f.code == "image.corrupt")


def test_zip64_archives_are_indexed_like_zipfile_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """images.zip files are > 4 GB with > 65,535 members: zip64 records, forced here on small data."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 100)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    files = {f"{i:05d}/{i:09d}.jpg": make.jpeg(seed=i) for i in range(5)}
    path = write_zip(tmp_path / "images.zip", files, prefix="images/")
    monkeypatch.undo()
    refs = refs_for([*files, "00009/000000009.jpg"])
    result = probe_images(refs, [path], level="decode", workers=1)
    assert codes_by_image(result, refs) == {"00009/000000009.jpg": "image.missing"}
    assert result.status == {"ok": 5, "missing": 1}


def test_a_missing_root_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="image root not found"):
        probe_images(refs_for(["a.jpg"]), [tmp_path / "nope.zip"])
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="not a readable zip"):
        probe_images(refs_for(["a.jpg"]), [tmp_path / "junk.zip"])
    with pytest.raises(UsageError):
        probe_images([], [tmp_path], level="deep")


def test_the_process_pool_gives_the_same_answers(tmp_path: Path) -> None:
    files = {f"{i}.jpg": make.jpeg(seed=i) for i in range(90)}
    files["3.jpg"] = make.truncated_jpeg()
    files["7.jpg"] = make.gif()
    root = write_zip(tmp_path / "images.zip", files)
    refs = refs_for(list(files))
    result = probe_images(refs, [root], level="decode", workers=2)
    assert codes_by_image(result, refs) == {
        "3.jpg": "image.truncated",
        "7.jpg": "image.format_mismatch",
    }
    assert result.probed == 90


def test_dimensions_and_formats_are_statistics(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"a.jpg": make.jpeg(64, 48), "b.png": make.png(32, 32)})
    result = probe_images(refs_for(["a.jpg", "b.png", "a.jpg"]), [root], workers=1)
    assert result.formats == {"JPEG": 1, "PNG": 1}
    assert result.dimensions is not None
    assert msgspec.to_builtins(result.dimensions.width) == {"min": 32, "median": 48, "max": 64}
    (summary,) = [f for f in result.findings if f.code == "stats.images"]
    assert summary.severity == "info" and "3 records" in summary.message


# ---- the cache: a re-run checks only what changed -------------------------------------------------


def test_second_run_probes_nothing_and_a_touched_file_is_probed_again(tmp_path: Path) -> None:
    files = {f"{i}.jpg": make.jpeg(seed=i) for i in range(6)}
    root = write_tree(tmp_path / "img", files)
    refs = refs_for(list(files))
    with Store(tmp_path / "state.sqlite") as store:
        first = probe_images(refs, [root], level="decode", store=store, workers=1)
        again = probe_images(refs, [root], level="decode", store=store, workers=1)
        (root / "4.jpg").write_bytes(make.truncated_jpeg())
        os.utime(root / "4.jpg", ns=(1, 1))
        third = probe_images(refs, [root], level="decode", store=store, workers=1)
    assert (first.probed, first.cached) == (6, 0)
    assert (again.probed, again.cached) == (0, 6)
    assert (third.probed, third.cached) == (1, 5)
    assert codes_by_image(third, refs) == {"4.jpg": "image.truncated"}


def test_cached_defects_are_still_reported(tmp_path: Path) -> None:
    root = write_zip(tmp_path / "images.zip", {"t.jpg": make.truncated_jpeg(), "g.jpg": make.gif()})
    refs = refs_for(["t.jpg", "g.jpg"])
    with Store(tmp_path / "state.sqlite") as store:
        first = probe_images(refs, [root], level="decode", store=store, workers=1)
        second = probe_images(refs, [root], level="decode", store=store, workers=1)
    assert second.probed == 0
    assert codes_by_image(second, refs) == codes_by_image(first, refs)


def test_a_shallow_cache_never_stands_in_for_a_deeper_check(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "img", {"t.jpg": make.truncated_jpeg()})
    refs = refs_for(["t.jpg"])
    with Store(tmp_path / "state.sqlite") as store:
        header = probe_images(refs, [root], level="header", store=store, workers=1)
        decode = probe_images(refs, [root], level="decode", store=store, workers=1)
        header_again = probe_images(refs, [root], level="header", store=store, workers=1)
    assert codes_by_image(header, refs) == {}
    assert decode.probed == 1 and codes_by_image(decode, refs) == {"t.jpg": "image.truncated"}
    assert header_again.probed == 0  # a deeper result answers a shallower question


def test_rewritten_zip_member_with_a_new_crc_is_probed_again(tmp_path: Path) -> None:
    path = tmp_path / "images.zip"
    write_zip(path, {"a.jpg": make.jpeg(seed=1), "b.jpg": make.jpeg(seed=2)})
    refs = refs_for(["a.jpg", "b.jpg"])
    with Store(tmp_path / "state.sqlite") as store:
        probe_images(refs, [path], level="decode", store=store, workers=1)
        write_zip(path, {"a.jpg": make.jpeg(seed=1), "b.jpg": make.truncated_jpeg()})
        again = probe_images(refs, [path], level="decode", store=store, workers=1)
    assert (again.probed, again.cached) == (1, 1)
    assert codes_by_image(again, refs) == {"b.jpg": "image.truncated"}


def test_encrypted_zip_member_is_unreadable_at_every_level(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "images.zip", {"a.jpg": make.jpeg(), "b.jpg": make.jpeg()})
    raw = bytearray(path.read_bytes())
    entry = raw.index(b"PK\x01\x02")  # central directory entry of a.jpg: set "encrypted"
    raw[entry + 8] |= 0x01
    path.write_bytes(bytes(raw))
    refs = refs_for(["a.jpg", "b.jpg"])
    for level in ("exists", "decode"):
        result = probe_images(refs, [path], level=level, workers=1)
        assert codes_by_image(result, refs) == {"a.jpg": "image.unreadable"}
        fig = result.figures  # present but not readable: broken, so not available
        assert (fig.missing, fig.broken, fig.unavailable) == (0, 1, 1)


@given(st.text(alphabet="ab./\\:", max_size=12))
def test_normalized_paths_never_leave_the_root(image: str) -> None:
    try:
        name = normalize(image)
    except UnsafePathError:
        return
    assert not name.startswith(("/", "../")) and name not in ("", ".", "..")
    assert posixpath.normpath(posixpath.join("/root", name)).startswith("/root/")


@pytest.mark.realdata
def test_real_lcs558k_records_against_a_zip_with_gaps(realdata: Path, tmp_path: Path) -> None:
    """LCS-558K's nested `00453/004539375.jpg` names, resolved through the structure loader."""
    from audit.loaders.records import image_refs

    refs = image_refs(realdata / "lcs558k_samples.json")
    assert len(refs) == 70
    absent = {refs[3].image, refs[40].image, refs[69].image}
    files = {ref.image: make.jpeg(seed=ref.index) for ref in refs if ref.image not in absent}
    files[refs[10].image] = make.truncated_jpeg()
    root = write_zip(tmp_path / "images.zip", files)
    result = probe_images(refs, [root], level="decode", workers=1, dataset="lcs")
    found = {(f.index, f.record_id, f.code) for f in result.findings if f.index is not None}
    assert found == {
        (3, refs[3].record_id, "image.missing"),
        (40, refs[40].record_id, "image.missing"),
        (69, refs[69].record_id, "image.missing"),
        (10, refs[10].record_id, "image.truncated"),
    }
    assert result.figures.missing_rate == pytest.approx(3 / 70, abs=1e-6)


def test_non_ascii_member_names_are_found(tmp_path: Path) -> None:
    files = {"ocr_vqa/images/café.jpg": make.jpeg(), "图片/猫.png": make.png()}
    root = write_zip(tmp_path / "images.zip", files)
    refs = refs_for([*files, "ocr_vqa/images/cafe.jpg"])
    result = probe_images(refs, [root], level="decode", workers=1)
    assert codes_by_image(result, refs) == {"ocr_vqa/images/cafe.jpg": "image.missing"}


def test_a_full_run_leaves_bad_paths_to_the_structure_stage(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "img", {"a.jpg": make.jpeg()})
    refs = refs_for(["../a.jpg", "a.jpg"])
    quiet = probe_images(refs, [root], workers=1, report_paths=False)
    assert codes_by_image(quiet, refs) == {}
    assert quiet.status == {"bad_path": 1, "ok": 1}


class RecordingProgress:
    def __init__(self) -> None:
        self.tasks: list[list[object]] = []  # [label, total, advanced]

    def start(self, label: str, total: int | None) -> None:
        self.tasks.append([label, total, 0])

    def advance(self, n: int = 1) -> None:
        self.tasks[-1][2] += n  # type: ignore[operator]

    def finish(self) -> None:
        pass


def test_progress_counts_every_probed_image(tmp_path: Path) -> None:
    files = {f"{i}.jpg": make.jpeg(seed=i) for i in range(70)}
    root = write_zip(tmp_path / "images.zip", files)
    progress = RecordingProgress()
    with Store(tmp_path / "s.sqlite") as store:
        probe_images(refs_for(list(files)), [root], store=store, workers=2, progress=progress)
        probe_images(refs_for(list(files)), [root], store=store, workers=2, progress=progress)
    probe_tasks = [t for t in progress.tasks if str(t[0]).startswith("images")]
    assert probe_tasks == [["images (0 cached)", 70, 70], ["images (70 cached)", 0, 0]]


def test_a_store_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "img", {"a.jpg": make.jpeg()})
    with Store(tmp_path / "s.sqlite") as store:
        store.conn.execute("PRAGMA query_only = ON")  # as a full disk or read-only file would
        with pytest.raises(StoreError, match="cannot record image results"):
            probe_images(refs_for(["a.jpg"]), [root], store=store, workers=1)


def test_a_huge_file_is_not_read_into_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.probes.images as probe

    monkeypatch.setattr(probe, "MAX_FILE_BYTES", 1000)
    root = write_tree(tmp_path, {"big.jpg": make.noisy_jpeg(), "small.jpg": make.jpeg(8, 8)})
    refs = refs_for(["big.jpg", "small.jpg"])
    result = probe_images(refs, [root], level="decode", workers=1)
    assert codes_by_image(result, refs) == {"big.jpg": "image.too_large"}
    assert "not read" in next(f.message for f in result.findings if f.index == 0)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_rare_zip_methods_under_a_top_folder_are_read(tmp_path: Path, method: int) -> None:
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr("images/a.jpg", make.jpeg())
        zf.writestr("images/t.jpg", make.truncated_jpeg())
    refs = refs_for(["a.jpg", "images/a.jpg", "t.jpg"])
    result = probe_images(refs, [path], level="decode", workers=1)
    assert codes_by_image(result, refs) == {"t.jpg": "image.truncated"}


class InterruptAfterFirstBatch(RecordingProgress):
    def advance(self, n: int = 1) -> None:
        super().advance(n)
        if str(self.tasks[-1][0]).startswith("images"):
            raise KeyboardInterrupt


def test_an_interrupted_run_keeps_what_it_checked(tmp_path: Path) -> None:
    files = {f"{i}.jpg": make.jpeg(8, 8, seed=i) for i in range(300)}
    root = write_zip(tmp_path / "images.zip", files)
    refs = refs_for(list(files))
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            probe_images(refs, [root], store=store, workers=1, progress=InterruptAfterFirstBatch())
        resumed = probe_images(refs, [root], store=store, workers=1)
    assert resumed.cached == 256  # the first batch survived the interrupt
    assert resumed.probed == 300 - 256
