"""`llava-audit urls`: findings file, summary, exit codes, and resuming after a kill."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpserver import JPEG, HttpServer, Reply

from audit.cli import main

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"dataset", "file", "index", "record_id", "code", "severity", "message"}


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/ok.jpg", Reply(200, {"Content-Type": "image/jpeg"}, JPEG))
        srv.route("/gone.jpg", Reply(410))
        yield srv


def write_metadata(path: Path, urls: list[str]) -> Path:
    path.write_text(json.dumps([{"id": f"{i:09d}", "url": u} for i, u in enumerate(urls)]))
    return path


def test_findings_file_and_summary(
    server: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = write_metadata(tmp_path / "meta.json", [server.url("/ok.jpg"), server.url("/gone.jpg")])
    out = tmp_path / "findings.jsonl"
    argv = ["urls", str(meta), "--allow-private", "--state", str(tmp_path / "s.sqlite")]
    assert main([*argv, "--findings", str(out)]) == 0  # dead links are warnings, not errors
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(set(r) == KEYS for r in rows)
    dead = [r for r in rows if r["code"] == "url.dead"]
    assert [(r["index"], r["record_id"], r["severity"]) for r in dead] == [
        (1, "000000001", "warning")
    ]
    shown = capsys.readouterr().out.replace("\n", "")  # Rich wraps a long tmp path anywhere
    assert "50.0%" in shown and "meta.json" in shown


def test_refused_without_allow_private(server: HttpServer, tmp_path: Path) -> None:
    meta = write_metadata(tmp_path / "meta.json", [server.url("/ok.jpg")])
    out = tmp_path / "f.jsonl"
    main(["urls", str(meta), "--state", str(tmp_path / "s.sqlite"), "--findings", str(out)])
    assert "url.refused" in out.read_text()
    assert sum(server.hits.values()) == 0


def test_usage_and_input_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["urls"]) == 2
    assert main(["urls", str(tmp_path / "missing.json"), "--state", str(tmp_path / "s")]) == 3
    err = capsys.readouterr().err
    assert "missing.json" in err and "Traceback" not in err


def test_a_killed_run_resumes_without_reprobing_recorded_urls(
    server: HttpServer, tmp_path: Path
) -> None:
    server.route("/slow.jpg", Reply(200, {"Content-Type": "image/jpeg"}, JPEG, delay=0.05))
    urls = [server.url(f"/slow.jpg/{i}") for i in range(60)]
    for i in range(60):
        server.route(f"/slow.jpg/{i}", Reply(200, {"Content-Type": "image/jpeg"}, JPEG, delay=0.05))
    meta = write_metadata(tmp_path / "meta.json", urls)
    config = tmp_path / "audit.toml"
    config.write_text(
        "[urls]\nallow_private = true\nworkers = 2\nper_host = 2\nbatch_size = 4\n"
        "check_robots = false\ncheck_tdmrep = false\n"  # counted hits: the images' only
    )
    state = tmp_path / "state.sqlite"
    cmd = [sys.executable, "-m", "audit", "urls", str(meta), "--config", str(config)]
    cmd += ["--state", str(state)]

    run = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while _recorded(state) < 12 and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.02)
    finally:
        run.kill()
        run.wait(timeout=10)
    recorded = _recorded_urls(state)
    assert 12 <= len(recorded) < 60, "the run must be killed part-way"
    hits_before = sum(server.hits.values())

    finished = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=60, check=False)
    assert finished.returncode == 0, finished.stderr.decode()
    assert len(_recorded_urls(state)) == 60
    for url in recorded:  # recorded before the kill: requested exactly once, by the first run
        assert server.hits[url.split(str(server.port), 1)[1]] == 1
    # the second run probed only what was left (at most the in-flight probes of the killed run twice)
    assert sum(server.hits.values()) - hits_before <= 60 - len(recorded)


def _recorded(state: Path) -> int:
    return len(_recorded_urls(state))


def _recorded_urls(state: Path) -> list[str]:
    if not state.exists():
        return []
    try:
        with sqlite3.connect(state, timeout=5) as conn:
            query = "SELECT url FROM url_result UNION SELECT url FROM url_result_log"
            return [row[0] for row in conn.execute(query)]
    except sqlite3.OperationalError:  # table not created yet
        return []


def test_inputs_from_the_config_datasets(server: HttpServer, tmp_path: Path) -> None:
    write_metadata(tmp_path / "metadata.json", [server.url("/ok.jpg"), server.url("/gone.jpg")])
    (tmp_path / "cc3m.tsv").write_text(f"a dog .\t{server.url('/gone.jpg')}\n")
    (tmp_path / "audit.toml").write_text(
        'state = "state.sqlite"\n[urls]\nallow_private = true\n'
        '[[datasets]]\nname = "cc3m"\nmetadata = "metadata.json"\nurl_tsv = "cc3m.tsv"\n'
    )
    out = tmp_path / "f.jsonl"
    assert main(["urls", "--config", str(tmp_path / "audit.toml"), "--findings", str(out)]) == 0
    dead = [json.loads(line) for line in out.read_text().splitlines()]
    dead = [(Path(r["file"]).name, r["index"]) for r in dead if r["code"] == "url.dead"]
    assert dead == [("cc3m.tsv", 0), ("metadata.json", 1)]
    assert server.hits["/gone.jpg"] == 1  # shared by both files, probed once
    assert (tmp_path / "state.sqlite").exists()  # the state path is relative to the config


def test_most_urls_failing_dns_asks_about_the_network(
    server: HttpServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    real = socket.getaddrinfo

    def no_such_host(host: str, *args: object, **kwargs: object) -> object:
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    urls = [f"http://host{i}.example.invalid/a.jpg" for i in range(3)] + [server.url("/ok.jpg")]
    meta = write_metadata(tmp_path / "meta.json", urls)
    argv = ["urls", str(meta), "--allow-private", "--state", str(tmp_path / "s.sqlite")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "no network? 3 of 4 URLs failed DNS lookup" in out
