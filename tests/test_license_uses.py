"""Verdicts per purpose and action, no-derivatives and changed images, opt-outs, typed verdict rows."""

from __future__ import annotations

import json
from pathlib import Path

import imagefactory
import pytest

from audit.config import LicenseConfig
from audit.licensing import USES, VerdictRow, license_files
from audit.licensing.policy import load_policy
from audit.licensing.provenance import RecordView, derive
from audit.licensing.verdicts import Evaluator, LicenceContext, RecordLicence

F, U, C, AO = "forbidden", "unknown", "conditional", "allowed_with_obligations"
POLICY = load_policy()
INSTR = "<image>\nWhat is shown?"


def _assess(view: RecordView, kind: str, **ctx: object) -> RecordLicence:
    context = LicenceContext(POLICY, LicenseConfig(), **ctx)  # type: ignore[arg-type]
    prov = derive(view, kind=kind, hosts=POLICY.lcs.hosts, lcs_fallback=POLICY.lcs.fallback)
    return Evaluator(context).assess(prov)


def _coco(licence: int, **extra: object) -> RecordLicence:
    view = RecordView(0, "000000000009", "coco/train2017/000000000009.jpg", instruction=INSTR)
    lic = POLICY.coco.license_ids[str(licence)]
    ctx = {"coco_licenses": {licence: lic}, "coco_images": {9: (licence, "")}, **extra}
    return _assess(view, "mix", **ctx)


def test_every_use_is_a_purpose_and_an_action() -> None:
    assert USES == (
        "research/train",
        "research/redistribute-annotations",
        "research/redistribute-images",
        "commercial/train",
        "commercial/redistribute-annotations",
        "commercial/redistribute-images",
    )


@pytest.mark.parametrize("licence", [1, 2, 3])
def test_nc_images_are_forbidden_for_every_commercial_action(licence: int) -> None:
    rec = _coco(licence)
    assert rec.verdicts["commercial/train"].verdict.value == F
    redistribute = rec.verdicts["commercial/redistribute-images"]
    assert redistribute.verdict.value == F
    assert any("non-commercial licence" in r for r in redistribute.reasons)
    assert rec.verdicts["research/redistribute-images"].verdict.usable or licence == 3


def test_nc_annotations_are_forbidden_to_redistribute_commercially(tmp_path: Path) -> None:
    """The LLaVA-Instruct card revision before 9d451dc was CC BY-NC 4.0: a user policy says so."""
    policy = tmp_path / "p.toml"
    policy.write_text(
        '[sources.gpt4_generated.components.generated_text]\nlicense = "CC-BY-NC-4.0"\n'
    )
    chat = tmp_path / "llava_instruct_150k.json"
    chat.write_text(
        json.dumps(
            [
                {
                    "id": "000000000009",
                    "image": "000000000009.jpg",
                    "conversations": [
                        {"from": "human", "value": INSTR},
                        {"from": "gpt", "value": "A cat."},
                    ],
                }
            ]
        )
    )
    settings = LicenseConfig(policy=str(policy))
    research = license_files([chat], use="research/redistribute-annotations", settings=settings)
    commercial = license_files([chat], use="commercial/redistribute-annotations", settings=settings)
    assert research.forbidden == {"research/redistribute-annotations": 0}
    assert commercial.forbidden == {"commercial/redistribute-annotations": 1}


@pytest.mark.parametrize("licence", [3, 6])
def test_nd_images_are_conditional_to_redistribute_as_unmodified_originals_only(
    licence: int,
) -> None:
    uv = _coco(licence).verdicts["research/redistribute-images"]
    assert uv.verdict.value == C
    assert any("redistribute unmodified originals only" in o for o in uv.obligations)
    changed = _coco(licence, modified={0: "resized"}).verdicts["research/redistribute-images"]
    assert changed.verdict.value == F


def test_a_resized_coco_image_is_found_and_becomes_forbidden_to_redistribute_under_nd(
    tmp_path: Path,
) -> None:
    root = tmp_path / "images"
    (root / "coco" / "train2017").mkdir(parents=True)
    for image_id, size in ((9, (64, 48)), (10, (32, 24))):  # 10 is half the recorded size
        path = root / "coco" / "train2017" / f"{image_id:012d}.jpg"
        path.write_bytes(imagefactory.jpeg(*size))
    coco = tmp_path / "coco.json"
    nd = ("Attribution-NoDerivs License", "http://creativecommons.org/licenses/by-nd/2.0/")
    coco.write_text(
        json.dumps(
            {
                "licenses": [{"id": 6, "name": nd[0], "url": nd[1]}],
                "images": [
                    {"id": i, "license": 6, "flickr_url": "", "width": 64, "height": 48}
                    for i in (9, 10)
                ],
            }
        )
    )
    chat = tmp_path / "mix.json"
    chat.write_text(
        json.dumps(
            [
                {
                    "id": f"{i:012d}",
                    "image": f"coco/train2017/{i:012d}.jpg",
                    "conversations": [
                        {"from": "human", "value": INSTR},
                        {"from": "gpt", "value": "A."},
                    ],
                }
                for i in (9, 10)
            ]
        )
    )
    rows: list[VerdictRow] = []
    result = license_files(
        [chat],
        use="research/redistribute-images",
        coco_annotations=coco,
        image_roots=[root],
        verdict_sink=rows.append,
    )
    (finding,) = [f for f in result.findings if f.code == "license.derivative"]
    assert finding.record_id == "000000000010" and "32x24" in finding.message
    assert "64x48" in finding.message
    assert [(r.record_id, r.verdict) for r in rows] == [("000000000009", C), ("000000000010", F)]
    without_roots = license_files([chat], use="research/redistribute-images", coco_annotations=coco)
    assert not [f for f in without_roots.findings if f.code == "license.derivative"]


def test_an_opted_out_image_is_only_conditional_for_research() -> None:
    """EU DSM Art. 3 covers research organisations only (issue 10)."""
    url = "http://images.example.com/1.jpg"
    view = RecordView(0, "000000000009", "coco/train2017/000000000009.jpg", url=url)
    ctx = {"coco_licenses": {4: "CC-BY-2.0"}, "coco_images": {9: (4, "")}}
    opted = _assess(view, "mix", opt_outs={url: ("x-robots-tag",)}, **ctx)
    assert opted.opt_out_kinds == ("x-robots-tag",)
    research = opted.verdicts["research/train"]
    assert research.verdict.value == C
    assert any("research organisation" in o for o in research.obligations)


def test_an_opt_out_kind_can_carry_its_own_restriction(tmp_path: Path) -> None:
    """The hook for more opt-out kinds (TDM Reservation Protocol, robots.txt): [signals.kinds]."""
    from audit.licensing.policy import load_policy as load

    policy_file = tmp_path / "p.toml"
    policy_file.write_text('[signals.kinds]\ntdmrep = "LicenseRef-OpenAI-ToU"\n')
    policy = load(policy_file)
    assert policy.signals.restriction_for("tdmrep") == "LicenseRef-OpenAI-ToU"
    assert policy.signals.restriction_for("x-robots-tag") == "LicenseRef-TDM-Opt-Out"


def test_sharegpt_user_prompts_are_unknown_for_commercial_training() -> None:
    rec = _assess(RecordView(0, "wgByO4Y_0", None), "mix")
    user = next(p for p in rec.parts if p.component == "user_text")
    assert user.license == "LicenseRef-ShareGPT-User-Prompts"
    assert rec.verdicts["commercial/train"].verdict.value == U


def test_every_verdict_carries_its_chain_of_evidence() -> None:
    from audit.licensing.evidence import RowBuilder

    rec = _coco(2)
    (row,) = RowBuilder(POLICY, ("commercial/train",)).rows("mix.json", rec)
    assert (row.file, row.index, row.record_id, row.verdict) == ("mix.json", 0, "000000000009", F)
    image = next(link for link in row.evidence if link.part == "image")
    assert (image.source, image.license, image.via) == ("coco", "CC-BY-NC-2.0", "COCO licence id 2")
    assert image.policy_entry.entry == "licenses.CC-BY-NC-2.0"
    assert image.policy_entry.url == "https://creativecommons.org/licenses/by-nc/2.0/legalcode"
    assert image.source_entry is not None
    assert "does not own the copyright of the images" in image.source_entry.quote
    assert {link.part for link in row.evidence} == {"image", "source_annotation", "generated_text"}
