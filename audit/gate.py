"""The CI gate: pass or fail an audit report against thresholds, with a reason for every rule.

Pure: a report, the ``[gate]`` settings and optionally the findings of a baseline go in, a
:class:`GateResult` comes out. With a baseline only findings that are new since then count, so a
team can adopt the gate on a dataset with known problems and still stop every new one. A blocklisted
item that reappears is never grandfathered by a baseline: the takedown rule always counts all.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath

import msgspec

from audit.config import GateConfig
from audit.errors import ConfigError
from audit.findings import CATALOGUE, Code, Finding, Severity
from audit.output.model import AuditReport, DatasetReport, ordered_stages
from audit.output.render.html import EXAMPLES_PER_CODE

FORBIDDEN_CODE = Code.LICENSE_FORBIDDEN
TAKEDOWN_CODE = Code.TAKEDOWN_PRESENT
#: A record named in an open request blocks training too (GDPR Art. 18), under the same rule.
PENDING_CODE = Code.TAKEDOWN_PENDING
_EXAMPLES = 10
#: :func:`finding_key`: dataset, file name, code, and which record or rule
FindingKey = tuple[str, str, str, str]


class RuleOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One rule on one dataset (``dataset`` None: the run as a whole)."""

    rule: str
    dataset: str | None
    passed: bool
    reason: str
    count: float | None = None
    limit: float | None = None
    examples: list[str] = msgspec.field(default_factory=list)


class GateResult(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict and every rule behind it (written as the gate's JSON result)."""

    passed: bool
    run_id: str
    baseline: str | None
    rules: list[RuleOutcome]

    @property
    def failures(self) -> list[RuleOutcome]:
        return [r for r in self.rules if not r.passed]


def check_config(config: GateConfig) -> None:
    """Refuse limits for codes that do not exist: a typo would silently never match."""
    unknown = sorted(code for code in config.max_errors_per_code if code not in CATALOGUE)
    if unknown:
        raise ConfigError(
            f"[gate] max_errors_per_code: unknown finding code(s) "
            f"{', '.join(_with_close_matches(code) for code in unknown)} "
            f"(codes are listed in the report and in audit/catalogue/codes.py)"
        )
    if config.max_unavailable_rate is not None and config.max_missing_rate is not None:
        raise ConfigError(
            "[gate] sets both max_unavailable_rate and max_missing_rate (its old name): keep "
            "max_unavailable_rate"
        )
    if not 0.0 <= unavailable_limit(config) <= 1.0:
        raise ConfigError("[gate] max_unavailable_rate must be between 0 and 1 (0.2 = 20%)")


#: ``[gate] max_unavailable_rate`` when neither it nor its old name is set.
DEFAULT_MAX_UNAVAILABLE = 0.2


def unavailable_limit(config: GateConfig) -> float:
    """The share of local images that may be unavailable (missing or broken) per dataset."""
    for limit in (config.max_unavailable_rate, config.max_missing_rate):
        if limit is not None:
            return limit
    return DEFAULT_MAX_UNAVAILABLE


def _with_close_matches(code: str) -> str:
    """``url.optout`` -> ``url.optout (did you mean url.opt_out?)``, so a typo is a one-line fix."""
    close = difflib.get_close_matches(code, CATALOGUE, n=3)
    return f"{code} (did you mean {' or '.join(close)}?)" if close else code


@dataclass(frozen=True)
class Tally:
    """Findings as the rules count them: (code, severity) -> n, and examples to show. From a
    stage run on Spark the examples are the first of each code and the counts its totals."""

    counts: Mapping[tuple[str, Severity], int]
    examples: Sequence[Finding]

    @classmethod
    def of(cls, findings: Sequence[Finding]) -> Tally:
        return cls(Counter((f.code, f.severity) for f in findings), findings)


def evaluate(
    report: AuditReport,
    config: GateConfig,
    *,
    baseline: Sequence[Finding] | Mapping[FindingKey, int] | None = None,
    baseline_name: str | None = None,
    new: Mapping[str, Tally] | None = None,
) -> GateResult:
    """Judge ``report``; ``baseline`` (a previous run's findings, or their :func:`finding_key`
    counts) limits counting to new ones.

    A report whose findings stayed in Parquet tables (:meth:`AuditReport.finding_tables`) is
    counted from its totals, and its new findings were matched where the tables are: ``new``
    holds them per dataset (:mod:`audit.engines.spark.baselines`), counts and first examples.
    """
    if baseline is not None and new is None and report.finding_tables():
        raise ConfigError(
            "--baseline needs every finding of the run, and this run's are in Parquet tables "
            "(the spark engine): match them on Spark (audit.engines.spark.baselines)"
        )
    rules = [_run_rule(report)]
    for ds in report.datasets:
        current = Tally(ds.finding_counts(), list(ds.findings()))
        fresh = current
        if new is not None:
            fresh = new.get(ds.name, Tally({}, []))
        elif baseline is not None:
            fresh = Tally.of(new_findings(in_record_order(ds), baseline))
        rules += [
            _stages_rule(ds),
            _errors_rule(ds.name, fresh, config, baseline is not None),
            _unavailable_rule(ds, config),
            _code_rule("license", ds.name, fresh, FORBIDDEN_CODE, config.fail_on_forbidden),
            _code_rule(
                "takedown",
                ds.name,
                current,
                (TAKEDOWN_CODE, PENDING_CODE),
                config.fail_on_takedown,
            ),
        ]
    return GateResult(
        passed=all(r.passed for r in rules),
        run_id=report.run_id,
        baseline=baseline_name if baseline is not None else None,
        rules=rules,
    )


def not_run(reason: str) -> GateResult:
    """The verdict when no report could be made: failed, with the reason as the run rule."""
    rule = RuleOutcome(rule="run", dataset=None, passed=False, reason=f"could not run: {reason}")
    return GateResult(passed=False, run_id="", baseline=None, rules=[rule])


def in_record_order(ds: DatasetReport) -> list[Finding]:
    """The dataset's findings stage by stage, each stage's in :func:`record_order`: the order
    new findings are matched against a baseline and shown in, the same on both engines (a
    Spark run's tables do not keep the order each stage found them in)."""
    ranked = [ds.stages[name].result for name in ordered_stages(ds.stages)]
    return [f for r in ranked if r is not None for f in sorted(r.findings, key=record_order)]


def record_order(f: Finding) -> tuple[str, bool, int, str, str]:
    """By file, then record (file-level findings last), code and message."""
    return (f.file, f.index is None, f.index or 0, f.code, f.message)


def new_findings(
    current: Iterable[Finding], baseline: Iterable[Finding] | Mapping[FindingKey, int]
) -> list[Finding]:
    """Findings of ``current`` not in ``baseline``, matched as multisets on :func:`finding_key`
    (``baseline`` may be the key counts already: a run audited on Spark is read as those).

    Keys use the record id (stable when records are inserted before it) and the file's name (CI
    machines mount data at different paths); repeated ids are counted, so a third copy of a
    problem that was there twice is one new finding.
    """
    allowance = (
        Counter(baseline)
        if isinstance(baseline, Mapping)
        else Counter(finding_key(f) for f in baseline)
    )
    fresh = []
    for finding in current:
        key = finding_key(finding)
        if allowance[key] > 0:
            allowance[key] -= 1
        else:
            fresh.append(finding)
    return fresh


def finding_key(finding: Finding) -> FindingKey:
    """Identity of a finding across runs: dataset, file name, code, and which record or rule.

    File-level findings carry counts in their message ("12 of 40 rows"), so only the message's
    first clause (the rule it names) identifies them.
    """
    if finding.record_id is not None:
        where = f"id:{finding.record_id}"
    elif finding.index is not None:
        where = f"#{finding.index}"
    else:
        where = finding.message.split(";")[0]
    return (finding.dataset, PurePath(finding.file).name, finding.code, where)


def _run_rule(report: AuditReport) -> RuleOutcome:
    """A run that did not finish, or audited nothing, vouches for nothing."""
    if report.status != "succeeded":
        reason = f"the audit {report.status}: {report.error or 'no reason recorded'}"
    elif not report.datasets:
        reason = "the report covers no dataset"
    else:
        return RuleOutcome(rule="run", dataset=None, passed=True, reason="the audit ran to the end")
    return RuleOutcome(rule="run", dataset=None, passed=False, reason=reason)


def _stages_rule(ds: DatasetReport) -> RuleOutcome:
    """A stage that failed to run checked nothing: the gate cannot vouch for what it missed."""
    failed = {name: run.note for name, run in ds.stages.items() if run.status == "failed"}
    if not failed:
        return RuleOutcome(rule="stages", dataset=ds.name, passed=True, reason="every stage ran")
    listed = "; ".join(f"{name}: {note or 'failed'}" for name, note in failed.items())
    return RuleOutcome(
        rule="stages",
        dataset=ds.name,
        passed=False,
        reason=f"{len(failed)} stage(s) could not run ({listed})",
        count=len(failed),
        limit=0,
    )


def _errors_rule(dataset: str, found: Tally, config: GateConfig, new_only: bool) -> RuleOutcome:
    """Error findings per code within their own limit; the rest together within ``max_errors``.

    The forbidden-licence and takedown codes have their own rules and are not counted twice.
    """
    own_rules = {FORBIDDEN_CODE, TAKEDOWN_CODE, PENDING_CODE}
    by_code: Counter[str] = Counter()
    for (code, severity), n in found.counts.items():
        if severity is Severity.ERROR and code not in own_rules and n:
            by_code[code] += n
    errors = [f for f in found.examples if f.severity is Severity.ERROR and f.code in by_code]
    total = sum(by_code.values())
    limited = {c: n for c, n in by_code.items() if c in config.max_errors_per_code}
    rest = sum(n for c, n in by_code.items() if c not in limited)
    over = [
        f"{code}: {n} > {config.max_errors_per_code[code]}"
        for code, n in sorted(limited.items())
        if n > config.max_errors_per_code[code]
    ]
    if rest > config.max_errors:
        over.append(f"other codes: {rest} > max_errors {config.max_errors}")
    what = "new error findings" if new_only else "error findings"
    most = sorted(by_code.items(), key=lambda item: (-item[1], item[0]))[:5]
    counts = ", ".join(f"{c} {n}" for c, n in most) or "none"
    bad_codes = {c for c, n in limited.items() if n > config.max_errors_per_code[c]}
    if rest > config.max_errors:
        bad_codes |= set(by_code) - set(limited)
    failing = [f for f in errors if f.code in bad_codes]
    return RuleOutcome(
        rule="errors",
        dataset=dataset,
        passed=not over,
        reason=(
            f"{total} {what} ({counts})"
            + (f"; over the limit: {'; '.join(over)}" if over else "; within the limits")
        ),
        count=total,
        limit=config.max_errors,
        examples=_examples(failing),
    )


def _unavailable_rule(ds: DatasetReport, config: GateConfig) -> RuleOutcome:
    """Local images the trainer cannot load: missing plus broken (audit.figures.Availability)."""
    limit = unavailable_limit(config)
    figures = ds.images
    if figures is None or figures.unavailable_rate is None:
        return RuleOutcome(
            rule="unavailable_rate",
            dataset=ds.name,
            passed=True,
            reason="images were not probed",
            limit=limit,
        )
    rate = figures.unavailable_rate
    ok = rate <= limit
    return RuleOutcome(
        rule="unavailable_rate",
        dataset=ds.name,
        passed=ok,
        reason=(
            f"{rate:.1%} of images unavailable: {figures.missing:,} missing + {figures.broken:,} "
            f"broken of {figures.referenced:,} ({'<=' if ok else '>'} {limit:.1%})"
        ),
        count=rate,
        limit=limit,
    )


def _code_rule(
    rule: str,
    dataset: str,
    found: Tally,
    codes: str | tuple[str, ...],
    enabled: bool,
) -> RuleOutcome:
    wanted = (codes,) if isinstance(codes, str) else codes
    by_code: Counter[str] = Counter()
    for (code, _), n in found.counts.items():
        if code in wanted and n:
            by_code[code] += n
    hits = [f for f in found.examples if f.code in wanted]
    n = sum(by_code.values())
    code = "/".join(sorted(by_code)) or " or ".join(wanted)
    passed = not n or not enabled
    if not n:
        reason = f"no {code} findings"
    elif enabled:
        reason = f"{n} {code} finding(s)"
    else:
        reason = f"{n} {code} finding(s), allowed by the [gate] settings"
    return RuleOutcome(
        rule=rule,
        dataset=dataset,
        passed=passed,
        reason=reason,
        count=n,
        limit=0 if enabled else None,
        examples=_examples(hits) if not passed else [],
    )


def _examples(findings: Sequence[Finding]) -> list[str]:
    """The first findings, at most as many of one code as a report from Spark keeps of it (so
    both engines' reports show the same examples)."""
    shown: list[Finding] = []
    per_code: Counter[str] = Counter()
    for f in findings:
        if per_code[f.code] < EXAMPLES_PER_CODE:
            per_code[f.code] += 1
            shown.append(f)
            if len(shown) == _EXAMPLES:
                break
    return [_describe(f) for f in shown]


def _describe(f: Finding) -> str:
    where = PurePath(f.file).name or f.dataset
    if f.index is not None:
        where += f"#{f.index}"
    if f.record_id is not None:
        where += f" (id {f.record_id})"
    return f"{where}: {f.code}: {f.message}"
