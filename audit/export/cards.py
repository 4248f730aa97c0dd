"""``LICENSES.md`` of an exported subset: its licences and obligations, for a dataset card. Pure.

Counts come from the run's licence classes (:class:`audit.results.RecordLicences`) of the kept
records only; each licence is named with the policy's title and public URL, the same terms the
licence stage judged with (``llava-audit license --attribution`` gives the per-item credits).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

from audit.licensing.policy import Policy
from audit.results import RecordLicences


def licences_markdown(
    dataset: str,
    use: str,
    table: RecordLicences,
    kept: Sequence[int],
    policy: Policy,
    include_conditional: bool,
) -> str:
    """The Markdown page: records per licence, per verdict, and every obligation to honour.

    ``kept`` are the exported records' positions in ascending order.
    """
    judged = kept[: bisect_left(kept, len(table.records))]
    per_class = Counter(map(table.records.__getitem__, judged))
    licences: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    obligations: Counter[str] = Counter()
    for cls, n in per_class.items():
        if cls < 0:
            continue
        c = table.classes[cls]
        licences.update({lic: n for lic in c.licenses})
        verdicts[c.verdicts.get(use, "not judged")] += n
        obligations.update({o: n for o in c.obligations.get(use, [])})
    total = sum(per_class.values())
    purpose = use.split("/", 1)[0]
    lines = [
        f"# Licences: {_md(dataset)}",
        "",
        f"{total:,} records exported for **{purpose}** training by llava-audit "
        f"(verdicts: allowed, allowed with obligations"
        f"{', conditional' if include_conditional else ''}). Not legal advice: the verdicts rest "
        "on the policy's quoted terms, listed below with their public URLs.",
        "",
        "## Verdicts",
        "",
        "| verdict | records |",
        "|---|---:|",
        *(f"| {_md(v)} | {n:,} |" for v, n in sorted(verdicts.items())),
        "",
        "## Licences",
        "",
        "| licence | name | records | terms |",
        "|---|---|---:|---|",
    ]
    for lic, n in sorted(licences.items(), key=lambda kv: (-kv[1], kv[0])):
        term = policy.licenses.get(lic) or policy.restrictions.get(lic)
        name = term.name if term else ""
        url = next((e.url for e in term.evidence if e.url), "") if term else ""
        lines.append(f"| `{_md(lic)}` | {_md(name)} | {n:,} | {_md(url)} |")
    lines += ["", "## Obligations", ""]
    if obligations:
        lines += [f"- {_md(o)} ({n:,} records)" for o, n in sorted(obligations.items())]
    else:
        lines.append("None recorded for the exported records.")
    if verdicts.get("conditional"):
        lines += [
            "",
            f"{verdicts['conditional']:,} records are **conditional**: usable only where the "
            "condition in their verdict holds (e.g. a research exception); see "
            "`llava-audit license --verdicts` for each record's chain of evidence.",
        ]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Dataset and policy text as literal Markdown table text."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
