"""The licence policy: spec/licensing.md §8 as data, loaded, merged with user overrides, validated.

The packaged `audit/data/policy.toml` holds the licence x use matrix, the restrictions, the sources and
the evidence for each. Users extend or override it with their own TOML file; a typo or a dangling
reference is one clear :class:`ConfigError` at start-up, never a silently permissive verdict.
"""

from __future__ import annotations

import enum
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgspec

from audit.config import LicenseConfig
from audit.errors import ConfigError

#: Columns of the licence x use matrix (§8.2). Declared uses map onto them in `column_for`.
Column = Literal["research", "commercial", "redistribute", "redistribute-modified"]
COLUMNS: tuple[Column, ...] = Column.__args__  # type: ignore[attr-defined]
ComponentKind = Literal[
    "image",
    "source_annotation",
    "caption_alt_text",
    "synthetic_caption",
    "generated_text",
    "user_text",
]


class Verdict(enum.StrEnum):
    """Per-use verdicts, ordered from most to least restrictive (§8.4)."""

    FORBIDDEN = "forbidden"
    UNKNOWN = "unknown"
    CONDITIONAL = "conditional"
    ALLOWED_WITH_OBLIGATIONS = "allowed_with_obligations"
    ALLOWED = "allowed"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def usable(self) -> bool:
        """Only a verdict that permits the use counts as usable; unknown never means allowed."""
        return self in (Verdict.ALLOWED, Verdict.ALLOWED_WITH_OBLIGATIONS)


_RANK = {v: i for i, v in enumerate(Verdict)}
VERDICTS: tuple[Verdict, ...] = tuple(Verdict)


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Policy tables reject unknown keys: a misspelt key must not silently drop a rule."""


class Evidence(_Strict, frozen=True):
    """A verbatim quote, where it was read, and the public page the policy entry rests on."""

    quote: str
    source: str
    url: str = ""


class WhenRule(_Strict, frozen=True):
    """An open legal point (§8.7): when a `[license]` setting has this value, the verdict changes."""

    setting: str
    equals: bool | str
    uses: list[Column]
    verdict: Verdict
    reason: str
    obligations: list[str] = msgspec.field(default_factory=list)


class Term(_Strict, frozen=True):
    """A licence (grant) or a restriction: one row of the §8.2 matrix with its evidence."""

    name: str
    research: Verdict
    commercial: Verdict
    redistribute: Verdict
    redistribute_modified: Verdict = msgspec.field(name="redistribute-modified")
    evidence: list[Evidence]
    urls: list[str] = msgspec.field(default_factory=list)
    obligations: list[str] = msgspec.field(default_factory=list)
    note: str = ""
    non_commercial: bool = False
    no_derivatives: bool = False
    share_alike: bool = False
    when: list[WhenRule] = msgspec.field(default_factory=list)

    def base(self, column: Column) -> Verdict:
        return {
            "research": self.research,
            "commercial": self.commercial,
            "redistribute": self.redistribute,
            "redistribute-modified": self.redistribute_modified,
        }[column]


class Component(_Strict, frozen=True):
    license: str
    restrictions: list[str] = msgspec.field(default_factory=list)


class Source(_Strict, frozen=True):
    name: str
    components: dict[ComponentKind, Component]
    evidence: list[Evidence]
    homepage: str = ""
    card_revision: str = ""
    attribution: str = ""
    note: str = ""


class ImageOrigin(_Strict, frozen=True):
    """Where the image bytes came from: restrictions it adds, and a permission it may give.

    ``license`` replaces the image licence of a source that grants none (those in ``replaces``):
    the distributor's own permission is then all the user has, e.g. LLaVA's research-only zip.
    """

    restrictions: list[str]
    evidence: list[Evidence]
    license: str | None = None
    replaces: list[str] = msgspec.field(default_factory=list)


class Signals(_Strict, frozen=True):
    """The restriction an opt-out adds to a record's image; ``kinds`` gives a kind its own
    (``x-robots-tag`` today; the TDM Reservation Protocol or robots.txt rules can be added)."""

    opt_out: str
    kinds: dict[str, str] = msgspec.field(default_factory=dict)

    def restriction_for(self, kind: str) -> str:
        return self.kinds.get(kind, self.opt_out)


class CocoPolicy(_Strict, frozen=True):
    license_ids: dict[str, str]
    evidence: list[Evidence]


class HostRule(_Strict, frozen=True):
    host: str
    source: str

    def matches(self, host: str) -> bool:
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


class LcsPolicy(_Strict, frozen=True):
    fallback: str
    evidence: list[Evidence]
    hosts: list[HostRule] = msgspec.field(default_factory=list)


class Card(_Strict, frozen=True):
    """A dataset card's declared licence, compared with what the records' parts allow (§8.4)."""

    name: str
    kinds: list[str]
    declared: str
    evidence: list[Evidence]
    revision: str = ""
    license_name: str = ""
    license_link: str = ""
    covers: str = "annotations"


class Policy(_Strict, frozen=True):
    """The whole policy after merging; cross-references checked by :func:`validate`."""

    version: int
    licenses: dict[str, Term]
    restrictions: dict[str, Term]
    signals: Signals
    image_origins: dict[str, ImageOrigin]
    coco: CocoPolicy
    lcs: LcsPolicy
    sources: dict[str, Source]
    cards: dict[str, Card] = msgspec.field(default_factory=dict)

    def card_for(self, kind: str) -> Card | None:
        return next((c for c in self.cards.values() if kind in c.kinds), None)

    def term(self, term_id: str) -> Term:
        return self.licenses.get(term_id) or self.restrictions[term_id]


@dataclass(frozen=True, slots=True)
class TermVerdict:
    """One term's verdict for one column after the settings are applied."""

    verdict: Verdict
    obligations: tuple[str, ...]
    reason: str


def evaluate(term: Term, column: Column, settings: LicenseConfig) -> TermVerdict:
    """The term's matrix cell for ``column``; the first matching `when` rule replaces it."""
    for rule in term.when:
        if column in rule.uses and getattr(settings, rule.setting) == rule.equals:
            return TermVerdict(
                rule.verdict, tuple(term.obligations + rule.obligations), rule.reason
            )
    verdict = term.base(column)
    # the note explains open verdicts (unknown, conditional); a plain "no" needs no explanation
    note = term.note if verdict in (Verdict.UNKNOWN, Verdict.CONDITIONAL) else ""
    return TermVerdict(verdict, tuple(term.obligations), note)


# ---- loading ----------------------------------------------------------------------------------------


def packaged_policy_text() -> str:
    return resources.files("audit").joinpath("data/policy.toml").read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None) -> Policy:
    """The packaged policy, merged with the user's policy file when one is given."""
    data = tomllib.loads(packaged_policy_text())
    label = "packaged policy"
    if path is not None:
        data = merge(data, _read_toml(Path(path)))
        label = f"{path} (merged over the packaged policy)"
    return parse(data, label)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: licence policy file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read licence policy: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: licence policy is not UTF-8 at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML in licence policy: {exc}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key (the override wins); lists and scalars are replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse(data: dict[str, Any], label: str = "policy") -> Policy:
    """Convert and validate a policy document; every problem names its key path."""
    _check_entries(data, label)
    try:
        policy = msgspec.convert(data, Policy)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    problems = validate(policy)
    if problems:
        shown = "; ".join(problems[:5]) + (
            f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        )
        raise ConfigError(f"{label}: {shown}")
    return policy


_ENTRY_TYPES: dict[str, type] = {
    "licenses": Term,
    "restrictions": Term,
    "sources": Source,
    "image_origins": ImageOrigin,
    "cards": Card,
}


def _check_entries(data: dict[str, Any], label: str) -> None:
    """Convert each named entry alone, so an error says which licence or source is wrong."""
    for table, entry_type in _ENTRY_TYPES.items():
        entries = data.get(table)
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            try:
                msgspec.convert(entry, entry_type)
            except msgspec.ValidationError as exc:
                raise ConfigError(f'{label}: {table}."{name}": {exc}') from None


def validate(policy: Policy) -> list[str]:
    """Cross-references and evidence: every id used is defined, every rule names a real setting."""
    problems: list[str] = []
    if policy.version != 1:
        problems.append(f"unsupported policy version {policy.version} (expected 1)")
    for table, terms in (("licenses", policy.licenses), ("restrictions", policy.restrictions)):
        for term_id, term in terms.items():
            where = f"{table}.{term_id}"
            problems += _evidence_problems(where, term.evidence)
            problems += [f"{where}.when: {p}" for r in term.when for p in _rule_problems(r)]
    for name, source in policy.sources.items():
        where = f"sources.{name}"
        problems += _evidence_problems(where, source.evidence)
        if not source.components:
            problems.append(f"{where}: no components")
        for kind, comp in source.components.items():
            if comp.license not in policy.licenses:
                problems.append(f"{where}.components.{kind}: unknown licence {comp.license!r}")
            problems += _restriction_problems(
                policy, f"{where}.components.{kind}", comp.restrictions
            )
    for name, card in policy.cards.items():
        problems += _evidence_problems(f"cards.{name}", card.evidence)
    for name, origin in policy.image_origins.items():
        problems += _evidence_problems(f"image_origins.{name}", origin.evidence)
        problems += _restriction_problems(policy, f"image_origins.{name}", origin.restrictions)
        for lic in filter(None, [origin.license, *origin.replaces]):
            if lic not in policy.licenses:
                problems.append(f"image_origins.{name}: unknown licence {lic!r}")
    problems += _evidence_problems("coco", policy.coco.evidence)
    problems += _evidence_problems("lcs", policy.lcs.evidence)
    for required in ("source", "llava-images-zip"):
        if required not in policy.image_origins:
            problems.append(f"image_origins: missing {required!r}")
    problems += _restriction_problems(
        policy, "signals", [policy.signals.opt_out, *policy.signals.kinds.values()]
    )
    for coco_id, lic in policy.coco.license_ids.items():
        if not coco_id.isdigit():
            problems.append(f"coco.license_ids: key {coco_id!r} is not a number")
        if lic not in policy.licenses:
            problems.append(f"coco.license_ids.{coco_id}: unknown licence {lic!r}")
    for source_id in [policy.lcs.fallback, *(h.source for h in policy.lcs.hosts)]:
        if source_id not in policy.sources:
            problems.append(f"lcs: unknown source {source_id!r}")
    for required_source in ("unknown", "coco", "cc3m", "sharegpt", "gpt4_generated"):
        if required_source not in policy.sources:
            problems.append(f"sources: missing {required_source!r}")
    return problems


def _evidence_problems(where: str, evidence: list[Evidence]) -> list[str]:
    """Each entry needs a quote and a public URL: a verdict's evidence chain shows both."""
    if not evidence:
        return [f"{where}: needs at least one evidence entry (quote, source and url)"]
    problems = [
        f"{where}.evidence[{i}]: quote and source must not be empty"
        for i, e in enumerate(evidence)
        if not e.quote.strip() or not e.source.strip()
    ]
    problems += [
        f"{where}.evidence[{i}]: url {e.url!r} is not an http(s) URL"
        for i, e in enumerate(evidence)
        if e.url and not _PUBLIC_URL.match(e.url)
    ]
    if not any(e.url for e in evidence):
        problems.append(f"{where}: needs an evidence entry with a public url (http or https)")
    return problems


_PUBLIC_URL = re.compile(r"https?://[^\s/]+\.[^\s/]+(?:/\S*)?$")


def _restriction_problems(policy: Policy, where: str, ids: list[str]) -> list[str]:
    return [f"{where}: unknown restriction {r!r}" for r in ids if r not in policy.restrictions]


_SETTING_TYPES = {  # the §8.7 switches a `when` rule may test (not file paths)
    f.name: f.type
    for f in msgspec.structs.fields(LicenseConfig)
    if f.name not in ("policy", "vg_image_data")
}


def _rule_problems(rule: WhenRule) -> list[str]:
    if rule.setting not in _SETTING_TYPES:
        known = ", ".join(sorted(_SETTING_TYPES))
        return [f"unknown setting {rule.setting!r} (known: {known})"]
    try:
        msgspec.convert(rule.equals, _SETTING_TYPES[rule.setting], strict=True)
    except msgspec.ValidationError as exc:
        return [f"setting {rule.setting!r} cannot equal {rule.equals!r}: {exc}"]
    return []
