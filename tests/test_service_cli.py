"""`init`, `run`, `serve` and `demo` as a user runs them: exit codes, files, what is printed."""

from __future__ import annotations

import http.client
import socket
import urllib.request
from pathlib import Path

import pytest
from httpserver import running

from audit import config as config_mod
from audit import demodata
from audit.cli import main
from audit.cli.service import report_server
from audit.demo import run_demo
from audit.output import publish as pub
from audit.output.server import ReportServer


def test_init_writes_a_config_that_run_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    text = (tmp_path / "audit.toml").read_text()
    assert text.count("\n#") > 20  # commented, section by section
    config = config_mod.load(tmp_path / "audit.toml")
    assert config.datasets and config.use.purpose == "research"
    assert main(["init"]) == 2  # never overwrites silently
    assert "already exists" in capsys.readouterr().err

    # the starter's dataset files do not exist here: refused before any work, each one named
    assert main(["run", "--config", "audit.toml"]) == 3
    err = capsys.readouterr().err
    assert "chat.json: conversation file of dataset 'cc3m' not found" in err.replace("\n", "")
    assert "metadata.json: metadata file of dataset 'cc3m' not found" in err.replace("\n", "")
    assert pub.published_runs(tmp_path / "reports") == []


def test_run_without_config_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "llava-audit init" in capsys.readouterr().err


def test_run_with_no_datasets_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "audit.toml").write_text("[use]\npurpose = 'research'\n")
    assert main(["run", "--config", str(tmp_path / "audit.toml")]) == 2
    assert "no datasets configured" in capsys.readouterr().err


def test_serve_refuses_a_missing_folder(tmp_path: Path) -> None:
    assert main(["serve", "--dir", str(tmp_path / "none")]) == 2


def test_serve_answers_on_localhost_only(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>runs</p>")
    server = report_server(tmp_path, 0)
    assert server.server_address[0] == "127.0.0.1"
    with (
        running(server) as base,
        urllib.request.urlopen(f"{base}/index.html", timeout=5) as resp,
    ):
        assert resp.read() == b"<p>runs</p>"


def _get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    """One raw request (no client-side path cleaning), with the Host header given or the usual."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_serve_never_leaves_the_reports_folder_and_lists_no_folder(tmp_path: Path) -> None:
    root, outside = tmp_path / "reports", tmp_path / "outside"
    (root / "run1").mkdir(parents=True)
    (root / "run1" / "index.html").write_text("<p>run 1</p>")
    (root / "run1" / "run.log").write_text("stage structure: ok")
    (root / "bare").mkdir()
    (root / "bare" / "report.json").write_text("{}")
    (root / ".staging-20261126T010000Z-0001").mkdir()
    (root / ".staging-20261126T010000Z-0001" / "index.html").write_text("half written")
    outside.mkdir()
    (outside / "index.html").write_text("<p>not a report</p>")
    (outside / "secret.txt").write_text("secret")
    (root / "passwd").symlink_to("/etc/passwd")
    (root / "elsewhere").symlink_to(outside)
    (root / "run1" / "up.txt").symlink_to(outside / "secret.txt")
    server = report_server(root, 0)
    with running(server):
        port = server.server_address[1]
        assert _get(port, "/run1/index.html") == (200, b"<p>run 1</p>")
        assert _get(port, "/run1/") == (200, b"<p>run 1</p>")
        assert _get(port, "/run1")[0] == 301  # to /run1/, so the page's relative links work
        assert _get(port, "/run1/run.log")[0] == 200
        for path in (
            "/passwd",
            "/elsewhere/",
            "/elsewhere/index.html",
            "/elsewhere/secret.txt",
            "/run1/up.txt",
            "/../outside/secret.txt",
            "/%2e%2e/outside/secret.txt",
            "/run1/%00",
            "/bare/",  # a folder without index.html: no listing
            "/bare",
            "/",
            "/.staging-20261126T010000Z-0001/index.html",
        ):
            status, body = _get(port, path)
            assert status == 404, path
            assert b"secret" not in body and b"root:" not in body and b"report.json" not in body


def test_serve_answers_only_requests_for_localhost(tmp_path: Path) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the reports."""
    (tmp_path / "index.html").write_text("<p>runs</p>")
    server = report_server(tmp_path, 0)
    with running(server):
        port = server.server_address[1]
        assert _get(port, "/index.html", host=f"localhost:{port}")[0] == 200
        assert _get(port, "/index.html", host=f"127.0.0.1:{port}")[0] == 200
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", ""):
            status, body = _get(port, "/index.html", host=host)
            assert status in (403, 421), host
            assert b"runs" not in body


def test_an_idle_client_is_dropped_and_blocks_nobody(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>runs</p>")
    server = ReportServer(tmp_path, 0, idle_timeout=0.5)
    with running(server) as base, socket.create_connection(server.server_address[:2]) as idle:
        with urllib.request.urlopen(f"{base}/index.html", timeout=5) as resp:
            assert resp.read() == b"<p>runs</p>"  # answered while the idle client holds on
        idle.settimeout(20)
        assert idle.recv(1) == b""  # the server hung up on it


@pytest.mark.parametrize("port", ["99999", "-1", "abc", "65536", ""])
def test_a_bad_port_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    assert main(["serve", "--dir", str(tmp_path), "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port" in err and "Traceback" not in err


def test_a_port_in_use_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--dir", str(tmp_path), "--port", str(port)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err


#: The code each planted defect must produce (dataset, index) -> code.
EXPECTED = {
    ("lcs", 3): "turn.role",
    ("lcs", 5): "turn.empty_value",
    ("lcs", 7): "image_token.count",
    ("lcs", 9): "turn.count",
    ("lcs", 11): "image.missing",
    ("lcs", 12): "image.empty",
    ("lcs", 13): "image.truncated",
    ("lcs", 14): "image.format_mismatch",
    ("lcs", 15): "id.pattern",
    ("cc3m", 2): "image_token.position",
    ("cc3m", 4): "xfile.caption_mismatch",
    ("cc3m", 6): "turn.eos_token",
    ("cc3m", 8): "image.path",
    ("cc3m", 10): "xfile.missing_metadata",
    ("cc3m", 12): "image.missing",
    ("cc3m", 13): "image.corrupt",
    ("cc3m", 16): "takedown.present",
    ("instruct", 2): "turn.order",
    ("instruct", 4): "record.id_type",
    ("instruct", 5): "record.duplicate",
    ("instruct", 6): "image.missing",
}


def test_demo_finds_every_planted_defect_and_publishes(tmp_path: Path) -> None:
    assert {(d, i) for d, i, _ in demodata.PLANTED} == set(EXPECTED)
    report, published = run_demo(tmp_path / "demo")
    assert report.status == "succeeded"
    found = {(f.dataset, f.index, f.code) for f in report.findings()}
    missed = [key for key, code in EXPECTED.items() if (*key, code) not in found]
    assert not missed
    for ds in report.datasets:
        for name, run in ds.stages.items():
            assert run.status != "failed", f"{ds.name}/{name}: {run.note}"
    by_name = {ds.name: ds for ds in report.datasets}
    for ds in report.datasets:  # every stage populated for every demo dataset
        assert all(run.status == "ok" for run in ds.stages.values()), ds.name
    instruct_urls = by_name["instruct"].stage("urls")  # Flickr URLs from the COCO annotation file
    assert instruct_urls is not None and instruct_urls.totals.referenced > 0
    urls = by_name["lcs"].stage("urls")
    assert urls is not None and urls.totals.status_counts.get("gone")  # the local host answered
    assert {"url.dead", "url.placeholder", "url.opt_out", "url.not_image"} <= {
        f.code for f in urls.findings
    }
    page = (published / "index.html").read_text()
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert (published / "data-docs" / "index.html").is_file()


def test_every_commented_setting_in_the_starter_config_is_valid(tmp_path: Path) -> None:
    """Uncommenting any example line must not turn into an unknown-key error at 2 a.m."""
    import re

    from audit.cli.service import starter_config

    line = re.compile(r'^# (\[\[?[\w.]+\]\]?|[\w"./-]+ = .+)$')
    text = "\n".join(
        m.group(1) if (m := line.match(raw)) else raw for raw in starter_config().splitlines()
    )
    assert text.splitlines().count("[[datasets]]") == 2
    (tmp_path / "audit.toml").write_text(text)
    config = config_mod.load(tmp_path / "audit.toml")
    assert config.license.vg_image_data and config.schedule.webhook and config.gate.baseline
