"""`llava-audit images`: exit codes, the findings file contract, config mode and the cache."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import imagefactory as make
import pytest

from audit.cli import main
from audit.findings import from_jsonl


def chat_file(path: Path, n: int) -> Path:
    records = [
        {
            "id": f"GCC_train_{i:09d}",
            "image": f"GCC_train_{i:09d}.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe the image concisely."},
                {"from": "gpt", "value": f"a photo number {i}"},
            ],
        }
        for i in range(n)
    ]
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def images_zip(path: Path, n: int, broken: dict[int, bytes] | None = None) -> Path:
    broken = broken or {}
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            zf.writestr(f"images/GCC_train_{i:09d}.jpg", broken.get(i, make.jpeg(seed=i)))
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    chat_file(tmp_path / "chat.json", 5)
    return tmp_path


def run(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


def test_clean_images_exit_0(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images_zip(data / "images.zip", 5)
    state = data / "state.sqlite"
    assert run("images", data / "chat.json", "--root", data / "images.zip", "--state", state) == 0
    out = capsys.readouterr().out
    assert "formats JPEG 5; size median 64x48" in out
    assert "0 errors, 0 warnings" in out


def test_broken_images_exit_1_with_one_finding_per_record(data: Path) -> None:
    images_zip(data / "images.zip", 4, broken={1: make.truncated_jpeg(), 3: b""})
    out = data / "findings.jsonl"
    code = run(
        "images", data / "chat.json", "--root", data / "images.zip", "--level", "decode",
        "--findings", out, "--state", data / "s.sqlite",
    )  # fmt: skip
    assert code == 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(lines[0]) == {"dataset", "file", "index", "record_id", "code", "severity", "message"}
    found = {(f.index, f.code) for f in from_jsonl(out.read_bytes()) if f.index is not None}
    assert found == {(1, "image.truncated"), (3, "image.empty"), (4, "image.missing")}


def test_usage_errors_exit_2(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("images", data / "chat.json") == 2  # no --root
    assert "--root" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run("images", data / "chat.json", "--root", data, "--level", "deep")
    assert exc.value.code == 2


def test_what_cannot_be_read_exits_3_naming_it(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = data / "s.sqlite"
    assert run("images", data / "chat.json", "--root", data / "none.zip", "--state", state) == 3
    assert "none.zip: image root not found" in capsys.readouterr().err
    (data / "bad.zip").write_bytes(b"PK but not really")
    assert run("images", data / "chat.json", "--root", data / "bad.zip", "--state", state) == 3
    assert "bad.zip" in capsys.readouterr().err
    assert run("images", data / "gone.json", "--root", data, "--state", state) == 3


def test_second_run_reads_the_cache(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    images_zip(data / "images.zip", 5)
    state = data / "state.sqlite"
    argv = ("images", data / "chat.json", "--root", data / "images.zip", "--state", state)
    assert run(*argv, "--level", "decode") == 0
    with sqlite3.connect(state) as conn:
        assert conn.execute("SELECT count(*) FROM image_probe").fetchone() == (5,)
    capsys.readouterr()
    assert run(*argv, "--level", "decode") == 0
    row = next(
        line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("chat")
    )
    assert row.split()[-2:] == ["0", "5"]  # checked 0, cached 5


def test_config_supplies_datasets_roots_and_level(data: Path) -> None:
    images_zip(data / "images.zip", 5, broken={2: make.truncated_jpeg()})
    (data / "audit.toml").write_text(
        '[[datasets]]\nname = "cc3m"\nchat = "chat.json"\nimages = ["images.zip"]\n'
        '[images]\nlevel = "decode"\n',
        encoding="utf-8",
    )
    out = data / "f.jsonl"
    assert run("images", "--config", data / "audit.toml", "--findings", out) == 1
    (finding,) = [f for f in from_jsonl(out.read_bytes()) if f.index is not None]
    assert (finding.dataset, finding.code, finding.index) == ("cc3m", "image.truncated", 2)
    assert (data / ".llava-audit" / "state.sqlite").exists()  # the config's state, beside it
    # a shallower re-run is answered from the deeper cached result, so the truncation stays known
    assert run("images", "--config", data / "audit.toml", "--level", "header") == 1


def test_a_wrong_root_gets_a_hint(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data / "elsewhere").mkdir()
    argv = ("images", data / "chat.json", "--root", data / "elsewhere", "--no-cache")
    assert run(*argv) == 1
    assert "--image_folder" in capsys.readouterr().out


def test_most_images_missing_asks_whether_the_root_is_right(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = data / "images"
    root.mkdir()
    (root / "GCC_train_000000000.jpg").write_bytes(make.jpeg(seed=0))
    assert run("images", data / "chat.json", "--root", root, "--no-cache") == 1
    out = capsys.readouterr().out.replace("\n", "")  # Rich may wrap a long tmp path
    assert f"is --root right? 4 of 5 images missing under {root}" in out
