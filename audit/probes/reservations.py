"""Pure: reading machine-readable TDM opt-outs (EU DSM Art. 4(3) reservations) out of what a
server sent: response headers, an origin's ``/.well-known/tdmrep.json``, its ``robots.txt``.

- **X-Robots-Tag** ``noai`` / ``noimageai``: img2dataset's rule, a directive counts if it has no
  user-agent prefix or ours.
- **TDMRep headers** (W3C TDM Reservation Protocol): ``tdm-reservation: 1`` reserves, with an
  optional ``tdm-policy`` URL; any other value is a protocol error and counts as unset. A header
  supersedes the origin's tdmrep.json (the spec's processing priority), so ``tdm-reservation: 0``
  is kept too, as an unreserved declaration.
- **tdmrep.json**: an array of rules ``{location, tdm-reservation, tdm-policy}``; the first rule
  whose location pattern matches the URL's path decides (robots.txt-style patterns: ``*`` any
  characters, a final ``$`` the end of the path; case-sensitive).
- **robots.txt**, parsed by the standard library's ``urllib.robotparser``: an opt-out is a
  Disallow in a group that names one of the configured AI-training agents and covers the URL. A
  ``User-agent: *`` group is not one: it keeps all crawlers out, not AI training in particular.
  The stdlib matches paths by prefix (no ``*`` / ``$`` wildcards) and agents by substring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import unquote, urlsplit
from urllib.robotparser import RobotFileParser

import msgspec

from audit.store.urls import Reservation

X_ROBOTS_TAG = "x-robots-tag"
TDM_HEADER = "tdm-reservation"
TDMREP_JSON = "tdmrep-json"
ROBOTS_TXT = "robots-txt"
#: The opt-out kinds, in the order messages list them.
KINDS = (X_ROBOTS_TAG, TDM_HEADER, TDMREP_JSON, ROBOTS_TXT)

ROBOTS_PATH = "/robots.txt"
TDMREP_PATH = "/.well-known/tdmrep.json"
#: RFC 9309 §2.5: crawlers parse at least the first 500 KiB of a robots.txt; the rest is ignored.
ROBOTS_MAX_BYTES = 500 * 1024
TDMREP_MAX_BYTES = 256 * 1024
_MAX_RULES = 1000  # tdmrep.json rules kept per origin
_STAR_AGENT = re.compile(r"(?im)^[ \t]*user-agent[ \t]*:[ \t]*\*[ \t]*(#.*)?$")
_ANY_AGENT = "user-agent: llava-audit-any-other-agent"


def header_reservations(
    headers: Mapping[str, Sequence[str]],
    url: str,
    now: float,
    *,
    directives: frozenset[str],
    tdm: bool,
) -> tuple[Reservation, ...]:
    """The reservations a response's headers make (``headers``: lower-case name -> values)."""
    found: list[Reservation] = []
    robots = [
        d
        for value in headers.get("x-robots-tag", ())
        for d in _robots_directives(value)
        if d in directives
    ]
    if robots:
        found.append(Reservation(X_ROBOTS_TAG, f"X-Robots-Tag: {', '.join(robots)}", url, now))
    values = [v.strip() for v in headers.get("tdm-reservation", ())]
    if tdm and values and values[0] in ("0", "1"):
        policy = next((p.strip() for p in headers.get("tdm-policy", ()) if p.strip()), None)
        reserved = values[0] == "1"
        rule = f"tdm-reservation: {values[0]}"
        if reserved and policy:
            rule += f"; tdm-policy: {policy[:300]}"
        found.append(
            Reservation(TDM_HEADER, rule, url, now, policy[:300] if policy else None, reserved)
        )
    return tuple(found)


def _robots_directives(value: str) -> list[str]:
    agent, sep, rest = value.partition(":")
    if sep and agent.strip().lower() not in ("*", "llava-audit"):
        return []
    return [d.strip().lower() for d in (rest if sep else value).split(",")]


class TdmRule(msgspec.Struct, frozen=True):
    location: str
    reservation: int
    policy: str | None = None


def parse_tdmrep(text: str) -> list[TdmRule]:
    """The rules of a tdmrep.json; a malformed file, or rule, is no rule (the protocol is not
    implemented there). Values other than 0 and 1 are protocol errors: the rule is skipped."""
    try:
        data = msgspec.json.decode(text.encode())
    except msgspec.DecodeError:
        return []
    if not isinstance(data, list):
        return []
    rules: list[TdmRule] = []
    for item in data[:_MAX_RULES]:
        if not isinstance(item, dict):
            continue
        location, value = item.get("location"), item.get("tdm-reservation")
        if not isinstance(location, str) or value not in (0, 1) or isinstance(value, bool):
            continue
        policy = item.get("tdm-policy")
        rules.append(TdmRule(location, value, policy if isinstance(policy, str) else None))
    return rules


def tdm_pattern_matches(pattern: str, path: str) -> bool:
    """robots.txt-style matching of a tdmrep.json location against a URL path."""
    pattern = pattern.split("#", 1)[0].strip()
    if not pattern:
        return False
    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    regex = ".*".join(re.escape(unquote(part)) for part in body.split("*"))
    return re.match(regex + ("$" if anchored else ""), unquote(path)) is not None


def tdmrep_reservation(
    rules: Sequence[TdmRule], url: str, source: str, seen_at: float
) -> Reservation | None:
    """The opt-out the first rule matching ``url``'s path makes, if it reserves."""
    if not rules:
        return None
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    for rule in rules:
        if tdm_pattern_matches(rule.location, path):
            if rule.reservation != 1:
                return None
            text = f'location "{rule.location[:200]}": tdm-reservation 1'
            if rule.policy:
                text += f", tdm-policy {rule.policy[:300]}"
            policy = rule.policy[:300] if rule.policy else None
            return Reservation(TDMREP_JSON, text, source, seen_at, policy)
    return None


def robots_parser(text: str) -> RobotFileParser:
    """A parser of ``text`` whose ``*`` groups name no agent any AI token contains."""
    parser = RobotFileParser()
    parser.parse(_STAR_AGENT.sub(_ANY_AGENT, text).splitlines())
    return parser


def robots_agents(parser: RobotFileParser, agents: Iterable[str]) -> list[str]:
    """The configured agents that a group of this robots.txt names: only they can be kept out, so
    ``can_fetch`` is asked for them alone (every agent for every URL cost a run of 30K URLs
    seconds of CPU). The groups are ``entries`` / ``default_entry`` (no public API; pinned by
    tests/test_urls_optouts.py); without them, every agent is asked."""
    entries = getattr(parser, "entries", None)
    if entries is None or getattr(parser, "default_entry", None) is not None:
        return list(agents)
    return [agent for agent in agents if any(e.applies_to(agent) for e in entries)]


def robots_reservation(
    parser: RobotFileParser, agents: Iterable[str], url: str, source: str, seen_at: float
) -> Reservation | None:
    """The opt-out of ``url`` by the groups of the configured agents, naming each agent kept out."""
    blocked = [agent for agent in agents if not parser.can_fetch(agent, url)]
    if not blocked:
        return None
    rules = [_disallow_line(parser, agent, url) for agent in blocked]
    text = "; ".join(
        f"User-agent: {agent} {rule}".strip() for agent, rule in zip(blocked, rules, strict=True)
    )
    return Reservation(ROBOTS_TXT, text[:500], source, seen_at)


def _disallow_line(parser: RobotFileParser, agent: str, url: str) -> str:
    """The rule line that keeps ``agent`` out, for the evidence (``Disallow: /img/``).

    The stdlib has no public accessor for it; ``entries`` / ``rulelines`` are its documented-by-
    use attributes (tests/test_urls_optouts.py pins them), and without them the agent is named
    alone."""
    path = urlsplit(url).path or "/"
    for entry in getattr(parser, "entries", ()):
        if not entry.applies_to(agent):
            continue
        for line in getattr(entry, "rulelines", ()):
            if line.applies_to(path):
                return "" if line.allowance else str(line)
    return ""
