"""The real LLaVA records in ../shared/realdata pass the structural audit with zero errors."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from audit.findings import Severity
from audit.loaders.records import detect_kind
from audit.structure import check_files

REAL_FILES = [
    ("raw/haotian-liu_LLaVA_pr1902__blip_laion_cc_sbu_2k.json", "lcs-chat", 2183),
    ("raw/SeHwanJoo_LLaVA__blip_laion_cc_sbu_558k_head10.json", "lcs-chat", 10),
    ("lcs558k_samples.json", "lcs-chat", 70),
    ("cc3m_chat_samples.json", "cc3m-chat", 5),
    ("instruct_samples.json", "instruct", 1),
]


@pytest.mark.parametrize(("name", "kind", "records"), REAL_FILES, ids=[f[0] for f in REAL_FILES])
def test_real_records_have_no_errors_and_kind_is_detected(
    realdata: Path, name: str, kind: str, records: int
) -> None:
    path = realdata / name
    result = check_files([path], workers=1)  # kind detected from the content
    problems = [f for f in result.findings if f.severity is not Severity.INFO]
    assert problems == []
    stats = msgspec.to_builtins(result.files[str(path)])
    assert stats["records"] == records
    assert result.unreadable == []
    assert any(f.code == "stats.summary" for f in result.findings)
    assert {f.file for f in result.findings} == {str(path)}
    assert result.findings[0].dataset == path.stem
    assert detect_kind(path) == kind


def test_lcs_subset_statistics_match_the_spec(realdata: Path) -> None:
    """spec §1.0: 1,124 records put <image> first and 1,059 last; all 11 observed prompts known."""
    path = realdata / "raw" / "haotian-liu_LLaVA_pr1902__blip_laion_cc_sbu_2k.json"
    stats = msgspec.to_builtins(check_files([path], workers=1).files[str(path)])
    assert stats["image_token_position"] == {"start": 1124, "end": 1059, "other": 0}
    assert stats["prompts"]["unknown"] == 0
    assert len(stats["prompts"]["top"]) == 11
    assert stats["turn_counts"] == {"2": 2183}


def test_all_real_files_together_use_a_worker_pool(realdata: Path) -> None:
    paths = [realdata / name for name, _, _ in REAL_FILES]
    result = check_files(paths, workers=2)
    assert [f for f in result.findings if f.severity is Severity.ERROR] == []
    assert result.records == sum(n for _, _, n in REAL_FILES)


class _Recorder:
    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0

    def start(self, label: str, total: int | None) -> None:
        self.total = total

    def advance(self, n: int = 1) -> None:
        self.done += n

    def finish(self) -> None:
        pass


def test_progress_counts_every_byte_in_process_and_in_the_pool(realdata: Path) -> None:
    paths = [realdata / name for name, _, _ in REAL_FILES]
    size = sum(p.stat().st_size for p in paths)
    for workers in (1, 2):
        progress = _Recorder()
        check_files(paths, workers=workers, progress=progress)
        assert progress.total == size and progress.done == size
