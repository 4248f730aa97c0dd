"""Typed, frozen configuration read from `audit.toml`.

Every stage reads its settings from here, never from the TOML dict, so a typo in the file is one clear
error at start-up instead of a silently ignored setting at 2 a.m.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from audit.configchoices import choice_problem
from audit.errors import ConfigError, InputError
from audit.loaders import MB, MissingInputError, read_input

#: audit.toml itself is refused above this size: its own [limits] cannot raise it.
CONFIG_MAX_BYTES = 16 * MB

Kind = Literal[
    "instruct", "cc3m-chat", "cc3m-metadata", "lcs-chat", "lcs-metadata", "mix", "generic"
]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]
Use = Literal["research", "commercial", "redistribute-images", "redistribute-annotations"]
Purpose = Literal["research", "commercial"]
Action = Literal["train", "redistribute-annotations", "redistribute-images"]
ACTIONS: tuple[str, ...] = Action.__args__  # type: ignore[attr-defined]
ImageOrigin = Literal["source", "llava-images-zip"]
EngineName = Literal["local", "spark"]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base for config sections: unknown keys are an error, not silently ignored."""


class DatasetConfig(_Section, frozen=True):
    """One dataset: its conversation file, optional metadata, image roots and provenance."""

    name: str
    kind: Kind | Literal["auto"] = "auto"
    chat: str | None = None
    metadata: str | None = None
    images: list[str] = msgspec.field(default_factory=list)
    url_tsv: str | None = None
    url_column: str = "url"
    source: str | None = None
    image_origin: ImageOrigin = "source"
    coco_annotations: str | None = None


class UseConfig(_Section, frozen=True):
    """What the data will be used for; licence verdicts and the gate are judged against it.

    Each verdict is for a purpose and an action: NC licences forbid every commercial action, so
    redistribution is judged for the purpose too. ``redistribute_images`` and
    ``redistribute_annotations`` (the older keys) add those actions.
    """

    purpose: Purpose = "research"
    action: Action | list[Action] = "train"
    redistribute_images: bool = False
    redistribute_annotations: bool = False

    def actions(self) -> tuple[str, ...]:
        """The declared actions, in order, without repeats."""
        declared = [self.action] if isinstance(self.action, str) else list(self.action)
        if self.redistribute_images:
            declared.append("redistribute-images")
        if self.redistribute_annotations:
            declared.append("redistribute-annotations")
        return tuple(dict.fromkeys(declared)) or ("train",)


#: robots.txt product tokens of AI-training crawlers, as their operators document them (OpenAI,
#: Common Crawl, Google, Anthropic, img2dataset, Apple, ByteDance, Cohere, Meta). Search and
#: user-triggered fetchers (PerplexityBot, ChatGPT-User) are left out: blocking them is no
#: reservation against training.
AI_USER_AGENTS = (
    "GPTBot",
    "CCBot",
    "Google-Extended",
    "anthropic-ai",
    "ClaudeBot",
    "img2dataset",
    "Applebot-Extended",
    "Bytespider",
    "cohere-ai",
    "meta-externalagent",
)
_AGENT_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class UrlConfig(_Section, frozen=True):
    """Remote probing limits: polite by default, fast enough for 600K URLs a night."""

    allow_private: bool = False
    #: Requests in flight over all processes (libcurl's multi interface: no thread each).
    workers: int = 512
    per_host: int = 8
    delay_seconds: float = 0.0
    timeout_seconds: float = 10.0
    #: Total time for one attempt at one URL: a server trickling bytes under the read timeout
    #: cannot hold a worker longer than this.
    max_seconds_per_url: float = 30.0
    retries: int = 3
    backoff_seconds: float = 0.5
    max_retry_after_seconds: float = 60.0
    max_redirects: int = 5
    max_bytes: int = 65536
    ttl_days: float = 30.0
    batch_size: int = 500
    user_agent: str = "llava-audit/0.1 (dataset link check; +https://pypi.org/project/llava-audit/)"
    #: Added to the shipped stand-ins (audit/data/placeholders.toml: Flickr, Imgur).
    placeholder_urls: list[str] = msgspec.field(default_factory=list)
    placeholder_sha256: list[str] = msgspec.field(default_factory=list)
    #: The same image bytes (on one site), or the same redirect target, answering this many
    #: distinct URLs is a host's stand-in: those URLs are placeholders (audit/probes/placeholders.py).
    placeholder_min_urls: int = 5
    #: X-Robots-Tag directives that mean "do not use for AI" (img2dataset honours the same).
    opt_out_directives: list[str] = msgspec.field(default_factory=lambda: ["noai", "noimageai"])
    #: Networks probed even though private (an intranet mirror); everything else private is refused.
    allow_networks: list[str] = msgspec.field(default_factory=list)
    #: Worker processes (0: one per core); runs smaller than ``process_threshold`` URLs use one.
    processes: int = 0
    process_threshold: int = 5000
    #: After this many URLs of one host fail in a row to connect (timeout, refused, DNS, TLS), the
    #: host's remaining URLs get the same status without a request: a dead host costs seconds.
    host_failure_limit: int = 5
    #: Transient failures (timeout, connection, server error, 429) are re-probed sooner than ttl_days.
    transient_ttl_days: float = 1.0
    #: Opt-outs beyond X-Robots-Tag. robots.txt rules naming an AI-training agent below (one extra
    #: request per host and run at most, cached robots_ttl_days), and the W3C TDM Reservation
    #: Protocol: the tdm-reservation / tdm-policy headers and /.well-known/tdmrep.json (one more).
    check_robots: bool = True
    check_tdmrep: bool = True
    robots_ttl_days: float = 1.0
    ai_user_agents: list[str] = msgspec.field(default_factory=lambda: list(AI_USER_AGENTS))


#: Valid ranges of the numeric [urls] keys: (lowest, lowest allowed itself, highest). A zero
#: timeout fails every URL, a huge retry count overflows the backoff, a huge max_bytes or worker
#: count exhausts memory; each is a one-line config error instead.
_URL_RANGES: dict[str, tuple[float, bool, float]] = {
    "workers": (1, True, 4096),
    "per_host": (1, True, 1024),
    "delay_seconds": (0, True, 3600),
    "timeout_seconds": (0, False, 3600),
    "max_seconds_per_url": (0, False, 86400),
    "retries": (0, True, 20),
    "backoff_seconds": (0, True, 3600),
    "max_retry_after_seconds": (0, True, 86400),
    "max_redirects": (0, True, 100),
    "max_bytes": (16, True, 64 * 2**20),  # 16: the longest image signature sniffed is 12 bytes
    "ttl_days": (0, True, 36500),
    "batch_size": (1, True, 1_000_000),
    "processes": (0, True, 1024),
    "process_threshold": (0, True, 10**12),
    "host_failure_limit": (0, True, 10**9),
    "transient_ttl_days": (0, True, 36500),
    "robots_ttl_days": (0, True, 36500),
    "placeholder_min_urls": (2, True, 10**9),  # 1 would make every image a stand-in
}


def url_settings_problem(urls: UrlConfig) -> str | None:
    """The first [urls] value out of its range, as one line naming the range; None if all fit."""
    for key, (low, low_ok, high) in _URL_RANGES.items():
        value = getattr(urls, key)
        inside = low <= value if low_ok else low < value
        if inside and value <= high:
            continue  # NaN fails every comparison, so it is reported too
        lowest = f">= {low:.0f}" if low_ok else f"> {low:.0f}"
        return f"[urls] {key} must be {lowest} and <= {high:.0f} (got {value!r})"
    if any(not ch.isprintable() for ch in urls.user_agent):
        return "[urls] user_agent must not contain control characters (it is an HTTP header)"
    bad = [a for a in urls.ai_user_agents if not _AGENT_TOKEN.fullmatch(a)]
    if bad:
        return (
            f"[urls] ai_user_agents: {bad[0][:80]!r} is not a robots.txt product token "
            "(letters, digits, '-', '_', '.'; at most 64)"
        )
    if urls.check_robots and not urls.ai_user_agents:
        return "[urls] ai_user_agents is empty: name at least one agent or set check_robots = false"
    return None


class ImageConfig(_Section, frozen=True):
    """Local image probing: how deep to look, and with how many processes."""

    level: Literal["exists", "header", "decode"] = "header"
    workers: int = 2
    max_pixels: int = 178_956_970


class LicenseConfig(_Section, frozen=True):
    """The open legal points of spec/licensing.md §8.7 are settings, not hard-coded answers."""

    policy: str | None = None  # a TOML file merged over the packaged audit/data/policy.toml
    # ND licences (COCO ids 3, 6): "unsettled" -> conditional; "yes" -> forbidden; "no" -> allowed
    training_is_derivative: Literal["unsettled", "yes", "no"] = "unsettled"
    # a statutory research exception (EU DSM Art. 3, §60d UrhG, fair use) covers unlicensed images
    research_exception: bool = False
    openai_terms_bind: bool = True
    internal_training_is_commercial: bool = True
    # redistributed images are resized or re-encoded (ND forbids redistributing changed copies)
    images_modified: bool = False
    # Visual Genome image_data.json: resolves VG/GQA images taken from COCO to their COCO licence
    vg_image_data: str | None = None


class LimitsConfig(_Section, frozen=True):
    """Size caps (MB) of the inputs read whole into memory: a clear refusal instead of running out
    of memory on a wrong path. Far above the real files (mix665k ~1 GB, COCO instances_train2017
    ~450 MB, CC-3M metadata ~200 MB)."""

    #: Conversation and metadata JSON/JSONL files and URL TSVs.
    dataset_mb: Annotated[int, msgspec.Meta(ge=1)] = 8192
    #: COCO annotation files and Visual Genome image_data.json.
    annotations_mb: Annotated[int, msgspec.Meta(ge=1)] = 4096
    #: A licence policy TOML.
    policy_mb: Annotated[int, msgspec.Meta(ge=1)] = 16

    def bytes(self, setting: str) -> int:
        """The cap of one setting in bytes."""
        return int(getattr(self, setting)) * MB


class GateConfig(_Section, frozen=True):
    """CI gate thresholds (DESIGN.md use case 2)."""

    max_errors: int = 0
    max_errors_per_code: dict[str, int] = msgspec.field(default_factory=dict)
    #: Local images unavailable (missing + broken, audit.figures.Availability) per dataset;
    #: None: ``max_missing_rate`` (its old name, still read), else 0.2.
    max_unavailable_rate: float | None = None
    max_missing_rate: float | None = None
    fail_on_forbidden: bool = True
    fail_on_takedown: bool = True
    baseline: str | None = None


class ScheduleConfig(_Section, frozen=True):
    """Nightly schedule; a late start within the grace period still runs (apscheduler misfire)."""

    cron: str = "30 2 * * *"  # 5-field crontab; numeric weekdays are crontab's (0 or 7 = Sunday)
    timezone: str = "UTC"
    misfire_grace_hours: float = 6.0
    catch_up: bool = True  # on start, run once if a fire time passed since the last success
    webhook: str | None = None  # POSTed a JSON body when a scheduled run fails
    webhook_timeout_seconds: float = 10.0
    notify_on_errors: bool = False  # also POST when a run succeeded but found error findings


#: Default [takedown] phash_distance: a re-encoded (JPEG quality) or resized copy of a picture
#: differs from it in a few of the 64 bits of its perceptual hash, a different picture in about 32.
PHASH_DISTANCE = 6


class TakedownConfig(_Section, frozen=True):
    """Where the takedown ledger lives (not in the cache folder), how long it keeps the
    requester's contact and notes (GDPR Art. 5(1)(e)) before they are redacted to a hash, and how
    near a perceptual hash must be (Hamming distance, 0-64) to count as the same picture."""

    ledger: str = "takedown.sqlite"
    personal_data_months: Annotated[int, msgspec.Meta(ge=0)] = 36
    phash_distance: Annotated[int, msgspec.Meta(ge=0, le=32)] = PHASH_DISTANCE


class EngineConfig(_Section, frozen=True):
    """Where the per-record work runs: this machine's processes, or a Spark cluster.

    ``local`` (the default) is the process-pool engine; ``spark`` runs the same pure rules in
    Spark executors (the ``llava-audit[spark]`` extra). ``master`` is a Spark master URL
    (``local[2]``, ``spark://host:7077``, ``yarn``; unset: what ``spark-submit`` or the
    environment gives); ``conf`` is passed to the SparkSession as-is.
    """

    name: EngineName = "local"
    master: str | None = None
    conf: dict[str, str] = msgspec.field(default_factory=dict)


class DerivedConfig(_Section, frozen=True):
    """An artefact built from the datasets (a shard, zip, checkpoint): a takedown must reach it."""

    name: str
    path: str
    kind: Literal["shard", "zip", "checkpoint", "other"] = "other"
    datasets: list[str] = msgspec.field(default_factory=list)  # empty: built from all of them


class Config(_Section, frozen=True):
    """The whole `audit.toml`. Paths are resolved against the file's folder."""

    datasets: list[DatasetConfig] = msgspec.field(default_factory=list)
    use: UseConfig = UseConfig()
    urls: UrlConfig = UrlConfig()
    images: ImageConfig = ImageConfig()
    license: LicenseConfig = LicenseConfig()
    gate: GateConfig = GateConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    limits: LimitsConfig = LimitsConfig()
    takedown: TakedownConfig = TakedownConfig()
    derived: list[DerivedConfig] = msgspec.field(default_factory=list)
    engine: EngineConfig = EngineConfig()
    reports_dir: str = "reports"
    #: Published run folders kept in ``reports_dir`` (the newest; 0 keeps all). The run history,
    #: and so the index's trend charts, keeps every run.
    keep_runs: Annotated[int, msgspec.Meta(ge=0)] = 30
    #: And at most this many MB of run folders in all (0: no cap); the newest run is always kept.
    keep_mb: Annotated[float, msgspec.Meta(ge=0)] = 0
    state: str = ".llava-audit/state.sqlite"
    base_dir: str = "."

    def path(self, value: str) -> Path:
        """Resolve a path from the config relative to the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def dataset(self, name: str) -> DatasetConfig:
        for ds in self.datasets:
            if ds.name == name:
                return ds
        known = ", ".join(d.name for d in self.datasets) or "none"
        raise ConfigError(f"unknown dataset {name!r} (configured: {known})")


#: [license] keys that were removed, with what replaced them: a config still setting one is told.
REMOVED_LICENSE_KEYS = {
    "images_zip_permits_research": (
        "was removed: LLaVA's images.zip notice is a restriction, not a licence, so its "
        "images are always `conditional` for research (research reproduction only, resting on "
        "your own research or TDM exception) and forbidden otherwise; delete the key"
    ),
}


def parse(data: dict[str, object], base_dir: Path, source: str = "audit.toml") -> Config:
    """Validate a TOML document into a :class:`Config`, with the key path in any error."""
    if "base_dir" in data:
        raise ConfigError(f"{source}: 'base_dir' is set from the file's location, not in the file")
    lic = data.get("license")
    for key, why in REMOVED_LICENSE_KEYS.items():
        if isinstance(lic, dict) and key in lic:
            raise ConfigError(f"{source}: [license] {key} {why}")
    choice = choice_problem(data, Config)
    if choice:
        raise ConfigError(f"{source}: {choice}")
    try:
        config = msgspec.convert({**data, "base_dir": str(base_dir)}, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    problem = url_settings_problem(config.urls)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    names = [d.name for d in config.datasets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"{source}: dataset names must be unique, repeated: {', '.join(duplicates)}"
        )
    return config


def load(path: str | Path) -> Config:
    """Read and validate `audit.toml`; every problem is a :class:`ConfigError` naming the file."""
    p = Path(path)
    try:
        raw = read_input(p, "config file", CONFIG_MAX_BYTES)
    except MissingInputError as exc:
        raise ConfigError(f"{exc.message} (create one with `llava-audit init`)") from None
    except InputError as exc:  # a config problem (exit 2), whatever is wrong with the path
        raise ConfigError(exc.message) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    return parse(data, p.resolve().parent, str(p))
