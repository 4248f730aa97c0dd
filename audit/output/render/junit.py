"""The gate's machine-readable results: JUnit XML for CI test tabs, JSON for scripts.

One JUnit test suite per dataset (plus one for the run as a whole) with one test case per gate rule,
so a CI system shows "lcs / missing_rate failed" next to the reason. Dataset text ends up in the
messages; ElementTree escapes markup, and characters XML 1.0 cannot carry at all are replaced.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:  # types only: output stays below the gate in the layering
    from audit.gate import GateResult, RuleOutcome

SUITE_NAME = "llava-audit gate"
_RUN_SUITE = "(run)"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def to_junit_xml(result: GateResult) -> bytes:
    """``<testsuites>`` with a ``<testsuite>`` per dataset and a ``<testcase>`` per rule."""
    groups: dict[str, list[RuleOutcome]] = {}
    for rule in result.rules:
        groups.setdefault(rule.dataset or _RUN_SUITE, []).append(rule)
    root = ET.Element(
        "testsuites",
        name=SUITE_NAME,
        tests=str(len(result.rules)),
        failures=str(len(result.failures)),
        errors="0",
    )
    for dataset, rules in groups.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_clean(dataset),
            tests=str(len(rules)),
            failures=str(sum(not r.passed for r in rules)),
            errors="0",
            skipped="0",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="run_id", value=_clean(result.run_id))
        if result.baseline:
            ET.SubElement(props, "property", name="baseline", value=_clean(result.baseline))
        for rule in rules:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_clean(f"llava_audit.gate.{dataset}"),
                name=rule.rule,
                time="0",
            )
            if rule.passed:
                ET.SubElement(case, "system-out").text = _clean(rule.reason)
            else:
                failure = ET.SubElement(
                    case, "failure", message=_clean(rule.reason), type=rule.rule
                )
                failure.text = _clean("\n".join([rule.reason, *rule.examples]))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def to_json(result: GateResult) -> bytes:
    """The :class:`GateResult` as indented JSON (``passed``, ``run_id``, ``baseline``, ``rules``)."""
    return msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n"


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
