"""Opt-outs beyond X-Robots-Tag: the TDMRep headers and tdmrep.json, robots.txt rules for AI
agents (once per origin, cached, polite, capped), and what they do to licence verdicts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.robotparser import RobotFileParser

import msgspec
import pytest
from httpserver import JPEG, HttpServer, Reply

from audit.config import UrlConfig, load
from audit.errors import ConfigError
from audit.licensing import VerdictRow, license_files
from audit.models import UrlRef
from audit.probes.reservations import robots_agents, robots_parser
from audit.probes.urls import probe_urls
from audit.results import UrlsResult
from audit.store import Store
from audit.store.urls import opt_out_kinds, opt_outs

IMAGE = {"Content-Type": "image/jpeg"}
ROBOTS = "User-agent: *\nDisallow: /private/\n\nUser-agent: GPTBot\nDisallow: /img/\n"
DAY = 86400.0


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        for path in ("/img/a.jpg", "/img/b.jpg", "/free/c.jpg", "/private/d.jpg"):
            srv.route(path, Reply(200, IMAGE, JPEG))
        yield srv


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state.sqlite") as st:
        yield st


def settings(**changes: object) -> UrlConfig:
    base = UrlConfig(allow_networks=["127.0.0.1/32"], timeout_seconds=1.0, backoff_seconds=0.01)
    return msgspec.structs.replace(base, **changes)


def run(server: HttpServer, paths: list[str], store: Store | None, **changes: object) -> UrlsResult:
    refs = [UrlRef(i, f"r{i}", server.url(p)) for i, p in enumerate(paths)]
    now = float(changes.pop("now", time.time()))  # type: ignore[arg-type]
    return probe_urls(refs, settings(**changes), store=store, file="meta.json", now=now)


def kinds(result: UrlsResult) -> dict[int | None, tuple[str, ...]]:
    return {o.index: o.kinds for o in result.opt_outs}


def opt_out_messages(result: UrlsResult) -> list[str]:
    return [f.message for f in result.findings if f.code == "url.opt_out"]


def test_robots_txt_disallowing_an_ai_agent_opts_out_the_paths_it_covers(
    server: HttpServer, store: Store
) -> None:
    server.route("/robots.txt", Reply(200, {"Content-Type": "text/plain"}, ROBOTS.encode()))
    result = run(server, ["/img/a.jpg", "/free/c.jpg", "/private/d.jpg"], store)
    # only GPTBot's group counts: a `User-agent: *` Disallow is no reservation against AI training
    assert kinds(result) == {0: ("robots-txt",)}
    assert result.totals.opt_out == 1
    (message,) = opt_out_messages(result)
    assert "robots.txt" in message and "User-agent: GPTBot Disallow: /img/" in message
    assert server.url("/robots.txt") in message
    (evidence,) = opt_outs(store, [server.url("/img/a.jpg")])[server.url("/img/a.jpg")]
    assert (evidence.kind, evidence.source) == ("robots-txt", server.url("/robots.txt"))
    assert evidence.seen_at > 0


def test_the_agent_list_is_a_setting(server: HttpServer, store: Store) -> None:
    server.route("/robots.txt", Reply(200, {}, b"User-agent: MyTrainer\nDisallow: /\n"))
    assert run(server, ["/img/a.jpg"], store).opt_outs == []
    result = run(server, ["/img/b.jpg"], store, ai_user_agents=["MyTrainer"])
    assert kinds(result) == {0: ("robots-txt",)}
    assert run(server, ["/free/c.jpg"], store, check_robots=False).opt_outs == []


def test_robots_and_tdmrep_are_fetched_once_per_origin_and_cached(
    server: HttpServer, store: Store
) -> None:
    server.route("/robots.txt", Reply(200, {}, ROBOTS.encode()))
    for i in range(30):
        server.route(f"/img/{i}.jpg", Reply(200, IMAGE, JPEG))
    paths = [f"/img/{i}.jpg" for i in range(30)]
    first = run(server, paths, store)
    assert first.totals.opt_out == 30
    assert server.hits["/robots.txt"] == 1 and server.hits["/.well-known/tdmrep.json"] == 1
    again = run(server, paths, store, ttl_days=0)  # every image re-probed, the host files not
    assert again.totals.probed == 30 and again.totals.opt_out == 30
    assert server.hits["/robots.txt"] == 1 and server.hits["/.well-known/tdmrep.json"] == 1
    later = run(server, paths, store, now=time.time() + 2 * DAY)  # past robots_ttl_days (1)
    assert later.totals.opt_out == 30
    assert server.hits["/robots.txt"] == 2 and server.hits["/.well-known/tdmrep.json"] == 2


@pytest.mark.parametrize("processes", [1, 2])
def test_host_files_go_out_with_the_probes_ahead_of_their_servers_urls(
    server: HttpServer, store: Store, processes: int
) -> None:
    """Fetched in the probe's own pool, not in a second pass after it: a run over many hosts
    does not wait for one more round trip per host at its end (nor for its dead hosts' timeouts)."""
    server.route("/robots.txt", Reply(200, {}, ROBOTS.encode()))
    paths = ["/img/a.jpg", "/free/c.jpg", "/img/b.jpg"]
    result = run(
        server, paths, store, workers=2, per_host=1, processes=processes, process_threshold=1
    )
    assert [p for p, _ in server.requests][:2] == ["/robots.txt", "/.well-known/tdmrep.json"]
    assert kinds(result) == {0: ("robots-txt",), 2: ("robots-txt",)}
    assert run(server, paths, store, ttl_days=0).totals.opt_out == 2  # cached: not fetched again
    assert server.hits["/robots.txt"] == 1


def test_tdmrep_json_rules_match_the_path_first_rule_wins(server: HttpServer, store: Store) -> None:
    rules = [
        {"location": "/img/*.jpg$", "tdm-reservation": 1, "tdm-policy": "https://p.example/p.json"},
        {"location": "/", "tdm-reservation": 0},
        {"location": "/free/", "tdm-reservation": 1},  # shadowed by the rule before
    ]
    server.route("/.well-known/tdmrep.json", Reply(200, {}, json.dumps(rules).encode()))
    server.route("/img/e.jpg", Reply(200, {**IMAGE, "tdm-reservation": "0"}, JPEG))
    result = run(server, ["/img/a.jpg", "/free/c.jpg", "/img/e.jpg"], store)
    # /img/e.jpg: its own tdm-reservation: 0 header supersedes the origin's file
    assert kinds(result) == {0: ("tdmrep-json",)}
    (evidence,) = opt_outs(store, [server.url("/img/a.jpg")])[server.url("/img/a.jpg")]
    assert evidence.policy == "https://p.example/p.json"
    assert evidence.source == server.url("/.well-known/tdmrep.json")
    assert "tdmrep.json" in opt_out_messages(result)[0]


def test_tdm_reservation_header_with_its_policy(server: HttpServer, store: Store) -> None:
    headers = {**IMAGE, "tdm-reservation": "1", "tdm-policy": "https://p.example/tdm.html"}
    server.route("/img/t.jpg", Reply(200, headers, JPEG))
    server.route("/img/bad.jpg", Reply(200, {**IMAGE, "tdm-reservation": "yes"}, JPEG))
    result = run(server, ["/img/t.jpg", "/img/bad.jpg"], store)
    assert kinds(result) == {0: ("tdm-reservation",)}  # "yes" is a protocol error: unset
    assert result.totals.status_counts == {"opt_out": 1, "ok": 1}
    (evidence,) = opt_outs(store, [server.url("/img/t.jpg")])[server.url("/img/t.jpg")]
    assert evidence.policy == "https://p.example/tdm.html"
    assert "tdm-reservation: 1" in opt_out_messages(result)[0]
    off = run(server, ["/img/t.jpg"], store, check_tdmrep=False)
    assert off.opt_outs == [] and off.totals.probed == 1  # another outcome setting: re-probed


def test_a_robots_txt_past_the_cap_is_read_only_as_far_as_the_cap(
    server: HttpServer, store: Store
) -> None:
    padding = b"# " + b"x" * 1000 + b"\n"
    huge = b"User-agent: ClaudeBot\nDisallow: /img/\n" + padding * 5000  # ~5 MB
    huge += b"User-agent: GPTBot\nDisallow: /\n"  # beyond RFC 9309's 500 KiB: not read
    server.route("/robots.txt", Reply(200, {}, huge))
    result = run(server, ["/img/a.jpg", "/free/c.jpg"], store)
    assert kinds(result) == {0: ("robots-txt",)}
    assert "ClaudeBot" in opt_out_messages(result)[0]
    held = store.conn.execute("SELECT length(body) FROM host_file WHERE name = '/robots.txt'")
    assert held.fetchone()[0] <= 500 * 1024


@pytest.mark.parametrize(
    "reply",
    [Reply(500), Reply(302, {"Location": "http://10.0.0.1/robots.txt"})],
    ids=["server-error", "redirect-to-private"],
)
def test_a_robots_txt_that_fails_is_no_rule_and_is_asked_again(
    server: HttpServer, store: Store, reply: Reply
) -> None:
    server.route("/robots.txt", reply)
    assert run(server, ["/img/a.jpg"], store).opt_outs == []
    assert run(server, ["/img/b.jpg"], store).opt_outs == []
    assert server.hits["/robots.txt"] == 2  # not cached: the next run asks again


def test_without_a_store_nothing_is_cached_but_opt_outs_are_reported(server: HttpServer) -> None:
    server.route("/robots.txt", Reply(200, {}, ROBOTS.encode()))
    assert kinds(run(server, ["/img/a.jpg"], None)) == {0: ("robots-txt",)}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ai_user_agents = ['GPT Bot']", "is not a robots.txt product token"),
        ("ai_user_agents = []", "ai_user_agents is empty"),
        ("robots_ttl_days = -1", "robots_ttl_days must be >= 0"),
        ("check_robots = 'yes'", "check_robots"),
    ],
)
def test_bad_opt_out_settings_are_config_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "audit.toml"
    path.write_text(f"[urls]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert fragment in str(caught.value) and caught.value.exit_code == 2


def test_robotparser_attributes_the_evidence_reads() -> None:
    """Contract: the rule text comes from RobotFileParser.entries[].rulelines (no public API)."""
    parser = RobotFileParser()
    parser.parse(["User-agent: GPTBot", "Disallow: /img/"])
    (entry,) = parser.entries
    assert entry.applies_to("GPTBot")
    (line,) = entry.rulelines
    assert line.applies_to("/img/a.jpg") and not line.allowance
    assert str(line) == "Disallow: /img/"
    assert parser.default_entry is None
    parser.parse(["User-agent: *", "Disallow: /"])
    assert parser.default_entry is not None and len(parser.entries) == 1


def test_only_the_agents_a_robots_txt_names_are_asked_about() -> None:
    parser = robots_parser(ROBOTS + "\nUser-agent: ccbot\nDisallow: /x/\n")
    agents = ["GPTBot", "CCBot", "Google-Extended"]
    assert robots_agents(parser, agents) == ["GPTBot", "CCBot"]
    assert robots_agents(robots_parser("User-agent: *\nDisallow: /\n"), agents) == []


# ---- licence verdicts -------------------------------------------------------------------------


def _verdicts(tmp_path: Path, store: Store, url: str) -> list[tuple[object, ...]]:
    meta = tmp_path / "blip_laion_cc_sbu_558k_meta.json"
    record = {"id": "1", "image": "00001/000010001.jpg", "blip_caption": "a dog", "url": url}
    meta.write_text(json.dumps([record]), encoding="utf-8")
    rows: list[VerdictRow] = []
    uses = ["research/train", "commercial/train", "commercial/redistribute-images"]
    license_files([meta], use=uses, store=store, verdict_sink=rows.append)
    return [(r.purpose, r.action, r.verdict, r.licenses, r.obligations, r.evidence) for r in rows]


def test_tdmrep_and_robots_opt_outs_change_verdicts_exactly_as_x_robots_tag(
    tmp_path: Path, store: Store
) -> None:
    with HttpServer() as xrt, HttpServer() as robots, HttpServer() as tdm:
        xrt.route("/img/a.jpg", Reply(200, {**IMAGE, "X-Robots-Tag": "noai"}, JPEG))
        robots.route("/robots.txt", Reply(200, {}, ROBOTS.encode()))
        tdm.route(
            "/.well-known/tdmrep.json", Reply(200, {}, b'[{"location": "/", "tdm-reservation": 1}]')
        )
        for srv in (robots, tdm):
            srv.route("/img/a.jpg", Reply(200, IMAGE, JPEG))
        robots.route("/free/c.jpg", Reply(200, IMAGE, JPEG))
        urls = [xrt.url("/img/a.jpg"), robots.url("/img/a.jpg"), tdm.url("/img/a.jpg")]
        free = robots.url("/free/c.jpg")
        refs = [UrlRef(i, None, u) for i, u in enumerate([*urls, free])]
        probe_urls(refs, settings(), store=store, file="meta.json")
    assert opt_out_kinds(store, [*urls, free]) == {
        urls[0]: ("x-robots-tag",),
        urls[1]: ("robots-txt",),
        urls[2]: ("tdmrep-json",),
    }
    by_xrt, by_robots, by_tdm, baseline = (_verdicts(tmp_path, store, u) for u in [*urls, free])
    assert by_robots == by_xrt and by_tdm == by_xrt
    assert by_xrt != baseline
    assert any("reserved text and data mining" in " ".join(row[4]) for row in by_xrt)  # type: ignore[arg-type]
