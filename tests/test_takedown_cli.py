"""`llava-audit takedown`: the flow through the CLI, and exit code 2 with one line for bad requests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from takedown_world import TARGET, build, dump

from audit import config as config_mod
from audit.cli import main
from audit.store import Store
from audit.takedown import blocklist_findings

pytestmark = pytest.mark.realdata


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["takedown", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_whole_flow_through_the_cli(
    tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build(tmp_path, realdata)
    cfg = ["--config", str(world.config)]
    code, out, _ = _run(
        capsys, "new", *cfg, "--ground", "gdpr", "--contact", "jane@example.org",
        "--image", TARGET, "--received", "2025-11-02", "--dataset", "lcs-a",
    )  # fmt: skip
    assert code == 0 and "TD-0001 recorded" in out and "2025-12-02" in out
    code, out, _ = _run(capsys, "match", *cfg, "TD-0001")
    assert code == 0 and f"{len(world.affected)} affected record(s)" in out
    assert "searched 19 records in 3 file(s)" in out
    code, out, _ = _run(capsys, "apply", *cfg, "TD-0001")
    assert code == 0 and f"{len(world.affected)} record(s) of TD-0001 removed" in out
    code, out, _ = _run(capsys, "verify", *cfg, "TD-0001")
    assert code == 1 and "not clean" in out  # the originals are still configured
    for f in (world.a_chat, world.b_chat, world.b_meta):
        shutil.copyfile(f.with_name(f"{f.stem}.TD-0001.cleaned{f.suffix}"), f)
    code, out, _ = _run(capsys, "verify", *cfg, "TD-0001")
    assert code == 1 and "not clean" in out  # the records are gone, the image files are not
    assert f"image still present: {world.images / TARGET}" in out
    assert "Remove them: llava-audit takedown apply TD-0001 --images folder" in out
    code, out, _ = _run(capsys, "apply", *cfg, "TD-0001", "--images", "folder")
    assert code == 0 and "no record left to remove" in out
    quarantine = world.config.parent / "takedowns/TD-0001/quarantine"
    assert f"moved {world.images / TARGET} -> {quarantine}" in out
    code, out, _ = _run(capsys, "verify", *cfg, "TD-0001")
    assert code == 0 and "verified" in out and "verify TD-0001 --purge" in out
    assert any(quarantine.rglob("*.jpg"))
    code, out, _ = _run(capsys, "verify", *cfg, "TD-0001", "--purge")
    assert code == 0 and f"purged: {quarantine}" in out and not quarantine.exists()
    for step in (
        ["identity", "--method", "reply from the address on file", "--date", "2025-11-03"],
        ["recipient", "--none"],
        ["release", "--affected", "v1", "--new-version", "v2", "--date", "2025-11-19"],
        ["notify", "--date", "2025-11-20"],
    ):
        code, out, _ = _run(capsys, step[0], *cfg, "TD-0001", *step[1:])
        assert code == 0 and ("recorded" in out or "requester notified" in out)

    html = tmp_path / "checklist.html"
    code, _, _ = _run(capsys, "checklist", *cfg, "TD-0001", "--format", "html", "--out", str(html))
    page = html.read_text()
    assert code == 0 and page.startswith("<!doctype html>")
    for _, _, _, record_id in world.affected:
        assert record_id in page
    assert 'class="pending"' not in page and "Nothing: every step is done." in page
    code, md, _ = _run(capsys, "checklist", *cfg, "TD-0001")
    assert code == 0 and md.startswith("# Takedown TD-0001")

    code, out, _ = _run(capsys, "list", *cfg, "--json")
    listed = json.loads(out)
    assert code == 0 and [r["request_id"] for r in listed] == ["TD-0001"]
    assert (
        "located ✓, removed ✓, blocklisted ✓, images_removed ✓, reaudited ✓, purged ✓"
        in (listed[0]["state"])
    )
    code, out, _ = _run(capsys, "show", *cfg, "TD-0001", "--json")
    steps = [e["step"] for e in json.loads(out)["events"]]
    assert steps == [
        "located", "removed", "blocklisted", "reaudited", "reaudited", "images_removed",
        "reaudited", "reaudited", "purged", "identity_checked", "recipient", "released",
        "notified",
    ]  # fmt: skip


def test_html_checklist_escapes_what_the_requester_wrote(
    tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg = ["--config", str(world.config)]
    evil = "<script>alert(1)</script>"
    assert _run(capsys, "new", *cfg, "--ground", "copyright", "--contact", evil,
                "--record-id", "004539375", "--notes", evil)[0] == 0  # fmt: skip
    code, page, _ = _run(capsys, "checklist", *cfg, "TD-0001", "--format", "html")
    assert code == 0 and evil not in page and "&lt;script&gt;" in page
    code, md, _ = _run(capsys, "checklist", *cfg, "TD-0001")
    assert evil not in md and r"\<script\>" in md


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["new", "--ground", "gdpr", "--contact", "a", "--sha256", "xyz"], "64 hexadecimal"),
        (["new", "--ground", "gdpr", "--contact", "a", "--image", TARGET, "--dataset", "nope"],
         "unknown dataset 'nope'"),
        (["new", "--ground", "gdpr", "--contact", "a"], "at least one identifier"),
        (["new", "--ground", "fun", "--contact", "a", "--image", TARGET], "invalid choice"),
        (["new", "--ground", "gdpr", "--contact", "a", "--image", TARGET, "--received", "2026-13-01"],
         "not a date"),
        (["show", "TD-0007"], "unknown takedown request 'TD-0007'"),
        (["apply", "TD-0007"], "unknown takedown request 'TD-0007'"),
        (["verify", "TD-0007"], "unknown takedown request 'TD-0007'"),
        (["checklist", "TD-0007"], "unknown takedown request 'TD-0007'"),
    ],
)  # fmt: skip
def test_bad_requests_exit_2_with_one_line(
    tmp_path: Path,
    realdata: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    world = build(tmp_path, realdata, with_images=False)
    try:
        code = main(["takedown", *argv[:1], "--config", str(world.config), *argv[1:]])
    except SystemExit as exc:  # argparse rejects usage errors itself, with exit code 2
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_a_missing_config_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "list", "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "config file not found" in err


def test_the_gate_fails_when_a_taken_down_image_is_put_back(
    tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build(tmp_path, realdata)
    # Without the metadata file: its records lack URLs, which the metadata rules rightly flag.
    toml = world.config.read_text().replace('metadata = "data/b_meta.json"\n', "")
    world.config.write_text(toml)
    cfg = ["--config", str(world.config)]
    _run(capsys, "new", *cfg, "--ground", "copyright", "--contact", "a@b", "--image", TARGET)
    _run(capsys, "apply", *cfg, "TD-0001")
    for f in (world.a_chat, world.b_chat):
        shutil.copyfile(f.with_name(f"{f.stem}.TD-0001.cleaned{f.suffix}"), f)
    assert main(["gate", *cfg]) == 0
    records = json.loads(world.a_chat.read_text())
    records.append({**records[0], "image": TARGET})
    dump(world.a_chat, records)
    assert main(["gate", *cfg]) == 1
    out = capsys.readouterr().out
    assert "takedown" in out and "takedown.present" in out


def test_an_unreadable_dataset_file_cannot_be_searched_exit_3(
    tmp_path: Path, realdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build(tmp_path, realdata, with_images=False)
    cfg = ["--config", str(world.config)]
    _run(capsys, "new", *cfg, "--ground", "copyright", "--contact", "a", "--image", TARGET)
    world.b_chat.write_text('{"id": "000019465", "image": ', encoding="utf-8")  # truncated
    code, _, err = _run(capsys, "match", *cfg, "TD-0001")
    assert code == 3 and "b_chat.json" in err and "Traceback" not in err
    # The audit's blocklist check still covers the readable files and says which one it skipped.
    config = config_mod.load(world.config)
    unreadable = blocklist_findings(config, Store(config.path(config.state))).unreadable
    assert len(unreadable) == 1 and "b_chat.json" in unreadable[0]
