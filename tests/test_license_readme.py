"""The README's licence verdict tables are what `license` computes on the real samples.

The tables (one per purpose, a column per action) are regenerated here from ../shared/realdata and
the tests/data excerpts with the default settings and compared with the README's block between the
`verdict-tables` markers. After a policy change, print the new block with
`.venv/bin/python tests/test_license_readme.py` and paste it into the README.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import realsamples

from audit.licensing import ACTIONS, PURPOSES, USES, VerdictRow, license_files

README = Path(__file__).resolve().parents[1] / "README.md"
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
START, END = "<!-- verdict-tables:start -->", "<!-- verdict-tables:end -->"
_SHORT = {
    "allowed": "A",
    "allowed_with_obligations": "AO",
    "conditional": "C",
    "unknown": "U",
    "forbidden": "F",
}


def _coco_mix(realdata: Path, out: Path) -> Path:
    """The 40 real COCO images of coco_licenses.json (licence ids 1-6) as mix665k records."""
    images = json.loads((realdata / "coco_licenses.json").read_text())["images"]
    records = [
        {
            "id": img["file_name"][:-4],
            "image": f"coco/train2017/{img['file_name']}",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is in the picture?"},
                {"from": "gpt", "value": "A."},
            ],
        }
        for img in images
    ]
    out.write_text(json.dumps(records), encoding="utf-8")
    return out


def _samples(realdata: Path, tmp: Path) -> list[tuple[str, Path, dict[str, object]]]:
    coco = realdata / "coco_licenses.json"
    return [
        (
            "realdata `cc3m_chat_samples.json`, images from source URLs",
            realdata / "cc3m_chat_samples.json",
            {},
        ),
        (
            "realdata `cc3m_chat_samples.json`, images from LLaVA's images.zip",
            realdata / "cc3m_chat_samples.json",
            {"image_origin": "llava-images-zip"},
        ),
        ("realdata `lcs558k_samples.json`", realdata / "lcs558k_samples.json", {}),
        ("realdata `gcc_tsv_samples.tsv` (CC-3M TSV)", realdata / "gcc_tsv_samples.tsv", {}),
        (
            "realdata `instruct_samples.json` + `coco_licenses.json`",
            realdata / "instruct_samples.json",
            {"coco_annotations": coco},
        ),
        (
            "realdata `coco_licenses.json` images as mix665k records",
            _coco_mix(realdata, tmp / "llava_v1_5_mix665k.json"),
            {"coco_annotations": coco},
        ),
        ("tests/data `blip_laion_cc_sbu_2k_head20.json`", realsamples.LCS_CHAT, {}),
        ("tests/data `cc3m_chat_samples.json`", realsamples.CC3M_CHAT, {}),
        (
            "tests/data `instruct_samples.json` + COCO excerpt",
            realsamples.INSTRUCT,
            {"coco_annotations": realsamples.COCO},
        ),
        ("tests/data `gcc_validation_head5.tsv` (CC-3M TSV)", realsamples.GCC_TSV, {}),
    ]


def _cell(counts: Counter[str]) -> str:
    order = list(_SHORT)
    return ", ".join(f"{counts[v]} {_SHORT[v]}" for v in order if counts[v])


def verdict_tables(realdata: Path, tmp: Path) -> str:
    """The README block: one table per purpose, a row per sample, a column per action."""
    rows: dict[str, dict[str, Counter[str]]] = {}
    for label, path, options in _samples(realdata, tmp):
        got: list[VerdictRow] = []
        license_files([path], use=USES, verdict_sink=got.append, **options)  # type: ignore[arg-type]
        per_use = rows[label] = {u: Counter() for u in USES}
        for row in got:
            per_use[f"{row.purpose}/{row.action}"][row.verdict] += 1
    lines = [START]
    for purpose in PURPOSES:
        lines += ["", f"**{purpose.capitalize()}** (default settings)", ""]
        lines.append("| sample | " + " | ".join(ACTIONS) + " |")
        lines.append("|---|" + "---|" * len(ACTIONS))
        for label, per_use in rows.items():
            cells = [_cell(per_use[f"{purpose}/{a}"]) for a in ACTIONS]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


@pytest.mark.realdata
def test_readme_verdict_tables_match_the_real_samples(realdata: Path, tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "README has no verdict-tables block"
    block = text[text.index(START) : text.index(END) + len(END)]
    assert block == verdict_tables(realdata, tmp_path), (
        "README verdict tables are stale: run `.venv/bin/python tests/test_license_readme.py` "
        "and paste its output into README.md"
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(verdict_tables(REALDATA, Path(tmp)))
