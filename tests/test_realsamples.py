"""The real-data excerpts in tests/data: present, loadable, clean, small, and faithful to the
../shared/realdata files they were cut from (that last check skips without ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import realsamples

from audit.findings import Severity
from audit.loaders.coco import load_coco_licences
from audit.loaders.records import detect_kind
from audit.loaders.urlsources import load_url_refs
from audit.structure import check_files

CHAT_FILES = [
    (realsamples.LCS_CHAT, "lcs-chat", 20),
    (realsamples.CC3M_CHAT, "cc3m-chat", 5),
    (realsamples.INSTRUCT, "instruct", 1),
]


@pytest.mark.parametrize(
    ("path", "kind", "records"), CHAT_FILES, ids=[p.name for p, _, _ in CHAT_FILES]
)
def test_excerpts_are_clean_real_records_of_their_kind(path: Path, kind: str, records: int) -> None:
    result = check_files([path], workers=1)
    assert [f for f in result.findings if f.severity is not Severity.INFO] == []
    assert result.files[str(path)].records == records
    assert detect_kind(path) == kind


def test_coco_excerpt_has_the_licence_block_and_an_image_per_licence() -> None:
    coco = load_coco_licences(realsamples.COCO)
    assert sorted(coco.licenses) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert sorted(licence for licence, _ in coco.images.values()) == [1, 2, 3, 4, 5, 6]
    assert coco.without_license == 0


def test_tsv_excerpt_gives_one_url_per_line() -> None:
    refs = load_url_refs(realsamples.GCC_TSV)
    assert len(refs) == 5
    assert all(r.url.startswith(("http://", "https://")) for r in refs)


def test_excerpts_stay_small_and_documented() -> None:
    """At most 50 entries in all, and SOURCES.md names every file."""
    coco = realsamples.load(realsamples.COCO)
    entries = sum(len(realsamples.load(p)) for p, _, _ in CHAT_FILES)
    entries += len(coco["licenses"]) + len(coco["images"]) + len(coco["annotations"])
    entries += len(realsamples.GCC_TSV.read_text(encoding="utf-8").splitlines())
    assert entries <= 50
    sources = (realsamples.DATA / "SOURCES.md").read_text(encoding="utf-8")
    assert all(f"## {p.name}" in sources for p in realsamples.ALL)
    assert sorted(p.name for p in realsamples.DATA.iterdir() if p.name != "SOURCES.md") == sorted(
        p.name for p in realsamples.ALL
    )


@pytest.mark.realdata
def test_excerpts_are_faithful_to_the_shared_files(realdata: Path) -> None:
    lcs_raw = (
        realdata / "raw" / "haotian-liu_LLaVA_pr1902__blip_laion_cc_sbu_2k.json"
    ).read_bytes()
    head = realsamples.LCS_CHAT.read_bytes()
    assert realsamples.load(realsamples.LCS_CHAT) == json.loads(lcs_raw)[:20]
    assert lcs_raw.startswith(head[: head.rindex(b"}") + 1])  # the same bytes up to record 20
    assert realsamples.CC3M_CHAT.read_bytes() == (realdata / "cc3m_chat_samples.json").read_bytes()
    assert realsamples.INSTRUCT.read_bytes() == (realdata / "instruct_samples.json").read_bytes()
    tsv = (realdata / "gcc_tsv_samples.tsv").read_bytes()
    assert tsv.startswith(realsamples.GCC_TSV.read_bytes())
    coco = realsamples.load(realsamples.COCO)
    full = json.loads((realdata / "coco_licenses.json").read_bytes())
    assert coco["info"] == full["info"] and coco["licenses"] == full["licenses"]
    assert all(image in full["images"] for image in coco["images"])
