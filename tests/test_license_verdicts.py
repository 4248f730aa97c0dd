"""Provenance and per-use verdicts: each source x use, the COCO join, images.zip, opt-outs (§8.3-8.5)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest
import realsamples

from audit.config import LicenseConfig
from audit.licensing import VerdictRow, license_files
from audit.licensing.inputs import coco_license_map
from audit.licensing.policy import load_policy
from audit.licensing.provenance import RecordView, derive
from audit.licensing.verdicts import Evaluator, LicenceContext, RecordLicence
from audit.loaders.coco import load_coco_licences

F, U, C, AO, A = "forbidden", "unknown", "conditional", "allowed_with_obligations", "allowed"
#: the four uses of the SOURCES table: research and commercial training, research redistribution
USES = (
    "research/train",
    "commercial/train",
    "research/redistribute-images",
    "research/redistribute-annotations",
)
POLICY = load_policy()
INSTR = "<image>\nWhat is shown?"

#: One representative record per source: (kind, view) -> source and verdicts for the four uses
#: (research, commercial, redistribute-images, redistribute-annotations), default settings.
SOURCES = {
    "cc3m": (
        "cc3m-chat",
        RecordView(0, "GCC_train_000000001", "GCC_train_000000001.jpg"),
        (U, F, F, A),
    ),
    "coco": ("instruct", RecordView(0, "000000000001", "000000000001.jpg"), (C, U, U, AO)),
    "lcs_unresolved": (
        "lcs-chat",
        RecordView(0, "000010001", "00001/000010001.jpg", url="http://ec1.ostkcdn.com/a.jpg"),
        (U, F, F, AO),
    ),
    "sbu": (
        "lcs-chat",
        RecordView(
            0,
            "000010001",
            "00001/000010001.jpg",
            url="http://static.flickr.com/2723/4385058960_b0f291553e.jpg",
        ),
        (U, F, F, AO),
    ),
    "vg": ("mix", RecordView(0, "1", "vg/VG_100K/1.jpg"), (C, U, U, AO)),
    "gqa": ("mix", RecordView(0, "1", "gqa/images/1.jpg"), (U, F, U, F)),
    "ocrvqa": ("mix", RecordView(0, "1", "ocr_vqa/images/1451670761.jpg"), (U, F, F, F)),
    "textvqa": ("mix", RecordView(0, "1", "textvqa/train_images/1.jpg"), (U, F, C, F)),
    # user prompts carry no licence: unknown for commercial training (issue 10)
    "sharegpt": ("mix", RecordView(0, "wgByO4Y_0", None), (AO, U, A, F)),
    "unknown": ("generic", RecordView(0, "x", "photos/x.png"), (U, F, F, F)),
}


def _assess(
    view: RecordView, kind: str, settings: LicenseConfig | None = None, **ctx: object
) -> RecordLicence:
    context = LicenceContext(POLICY, settings or LicenseConfig(), **ctx)  # type: ignore[arg-type]
    prov = derive(view, kind=kind, hosts=POLICY.lcs.hosts, lcs_fallback=POLICY.lcs.fallback)
    return Evaluator(context).assess(prov)


def _verdicts(rec: RecordLicence) -> tuple[str, ...]:
    return tuple(rec.verdicts[u].verdict.value for u in USES)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_each_source_gets_the_spec_verdict_for_each_use(source: str) -> None:
    kind, view, expected = SOURCES[source]
    rec = _assess(view, kind)
    assert rec.provenance.source == source
    assert _verdicts(rec) == expected


def test_lcs_source_from_the_url_host_is_marked_inferred() -> None:
    rec = _assess(SOURCES["sbu"][1], "lcs-chat")
    assert rec.provenance.inferred
    assert rec.provenance.parts[0].inferred and rec.provenance.parts[0].component == "image"


@pytest.mark.parametrize(
    ("instruction", "annotation_source"),
    [
        # VQAv2 and OK-VQA share the prompt: the policy source covers both, the stricter applies
        (INSTR + "\nAnswer the question using a single word or phrase.", "vqav2_or_okvqa"),
        (INSTR + "\nAnswer with the option's letter from the given choices directly.", "aokvqa"),
        (
            "<image>\nPlease provide the bounding box coordinate of the region this sentence "
            "describes: man",
            "refcoco",
        ),
        (INSTR, "coco"),
    ],
)
def test_mix_coco_records_infer_their_annotation_source(
    instruction: str, annotation_source: str
) -> None:
    view = RecordView(0, "000000033471", "coco/train2017/000000033471.jpg", instruction=instruction)
    rec = _assess(view, "mix")
    assert rec.provenance.source == "coco" and rec.provenance.coco_image_id == 33471
    assert rec.parts[1].source == annotation_source
    generated = {p.source for p in rec.parts if p.component == "generated_text"}
    assert generated == ({"gpt4_generated"} if annotation_source == "coco" else set())


def test_metadata_records_carry_the_blip_caption_part() -> None:
    with_blip = RecordView(
        0, "GCC_train_1", "GCC_train_000000001.jpg", url="http://x/1.jpg", blip_caption=True
    )
    rec = _assess(with_blip, "cc3m-metadata")
    assert [(p.source, p.component) for p in rec.parts] == [
        ("cc3m", "image"),
        ("cc3m", "caption_alt_text"),
        ("blip_caption", "synthetic_caption"),
    ]
    lcs = RecordView(0, "004539375", "00453/004539375.jpg", url="http://x/1.jpg")
    assert [p.component for p in _assess(lcs, "lcs-metadata").parts] == ["image"]


def test_a_bare_coco_name_in_a_generic_file_is_only_a_guess() -> None:
    view = RecordView(0, "000000000001", "000000000001.jpg", instruction=INSTR)
    assert _assess(view, "generic").provenance.inferred
    assert not _assess(view, "instruct").provenance.inferred


# ---- COCO per-image licences from the real annotation file (acceptance) ----------------------------


def _coco_ctx(annotations: Path = realsamples.COCO) -> dict[str, object]:
    """Licence context from a real COCO annotation file (default: the excerpt in tests/data)."""
    coco = load_coco_licences(annotations)
    return {
        "coco_licenses": coco_license_map(POLICY, coco.licenses),
        "coco_license_names": coco.licenses,
        "coco_images": coco.images,
    }


@pytest.mark.realdata
def test_real_coco_images_join_to_their_licence(realdata: Path) -> None:
    images = json.loads((realdata / "coco_licenses.json").read_text())["images"]
    ctx = _coco_ctx(realdata / "coco_licenses.json")
    modified = LicenseConfig(images_modified=True)
    seen = set()
    for img in images:
        name = img["file_name"]
        view = RecordView(0, name[:-4], f"coco/train2017/{name}", instruction=INSTR)
        rec = _assess(view, "mix", **ctx)
        image_part = rec.parts[0]
        lic = POLICY.licenses[image_part.license]
        coco_id = img["license"]
        seen.add(coco_id)
        assert lic.non_commercial == (coco_id in (1, 2, 3)), name
        assert lic.no_derivatives == (coco_id in (3, 6)), name
        commercial = rec.verdicts["commercial/train"].verdict.value
        assert (commercial == F) == (coco_id in (1, 2, 3)), name
        changed_copies = _assess(view, "mix", modified, **ctx).verdicts[
            "research/redistribute-images"
        ]
        assert (changed_copies.verdict.value == F) == (coco_id in (3, 6)), name
        assert any(img["flickr_url"] in credit for credit in rec.attribution), name
    assert seen == {1, 2, 3, 4, 5, 6}


def test_coco_image_missing_from_the_annotation_file_stays_unresolved() -> None:
    view = RecordView(0, "000000442786", "000000442786.jpg", instruction=INSTR)
    rec = _assess(view, "instruct", **_coco_ctx())
    assert rec.coco_unresolved
    assert rec.parts[0].license == "LicenseRef-COCO-image-unresolved"
    assert not rec.verdicts["commercial/train"].verdict.usable


# ---- LLaVA images.zip: research reproduction only (acceptance) -------------------------------------


def test_images_zip_is_research_only_whatever_the_image_licence() -> None:
    """A CC BY 2.0 COCO image is fine for everything, until its bytes come from images.zip."""
    view = RecordView(0, "000000159269", "coco/train2017/000000493652.jpg", instruction=INSTR)
    ctx = _coco_ctx()
    ctx["coco_images"] = {493652: (4, "http://farm4.staticflickr.com/x.jpg")}
    from_source = _assess(view, "mix", **ctx)
    from_zip = _assess(view, "mix", image_origin="llava-images-zip", **ctx)
    assert _verdicts(from_source)[:3] == (AO, C, AO)  # C: the OpenAI terms on generated text
    assert _verdicts(from_zip)[:3] == (C, F, F)  # the restriction is a condition, never a grant
    assert any(
        "reproduce LLaVA research" in o for o in from_zip.verdicts["research/train"].obligations
    )
    reasons = " ".join(from_zip.verdicts["commercial/train"].reasons)
    assert "LicenseRef-LLaVA-images-research-reproduction-only" in reasons


@pytest.mark.parametrize("research_exception", [False, True])
def test_cc3m_images_zip_is_conditional_for_research_and_forbidden_otherwise(
    research_exception: bool,
) -> None:
    """LLaVA does not own the photos: its notice restricts, it cannot license (issue 10)."""
    view = RecordView(0, "GCC_train_002582585", "GCC_train_002582585.jpg")
    settings = LicenseConfig(research_exception=research_exception)
    rec = _assess(view, "cc3m-chat", settings, image_origin="llava-images-zip")
    assert _verdicts(rec) == (C, F, F, A)
    for use in ("commercial/redistribute-images", "commercial/train"):
        assert rec.verdicts[use].verdict.value == F
    image = rec.parts[0]
    assert image.license == "LicenseRef-LLaVA-images-zip-unlicensed"
    assert image.restrictions == ("LicenseRef-LLaVA-images-research-reproduction-only",)
    research = rec.verdicts["research/train"]
    assert any("own research or text-and-data-mining exception" in o for o in research.obligations)


def test_cc3m_images_from_their_urls_are_unknown_unless_a_research_exception_then_conditional() -> (
    None
):
    view = RecordView(0, "GCC_train_002582585", "GCC_train_002582585.jpg")
    from_source = _assess(view, "cc3m-chat")
    assert from_source.parts[0].license == "LicenseRef-All-Rights-Reserved"
    assert from_source.verdicts["research/train"].verdict.value == U
    excepted = _assess(view, "cc3m-chat", LicenseConfig(research_exception=True))
    assert excepted.verdicts["research/train"].verdict.value == C  # never allowed


# ---- most restrictive wins; obligations are the union ----------------------------------------------


def test_most_restrictive_part_decides_and_obligations_are_the_union() -> None:
    view = RecordView(0, "000000000009", "000000000009.jpg", instruction=INSTR)
    ctx = {"coco_licenses": {2: "CC-BY-NC-2.0"}, "coco_images": {9: (2, "http://f/9.jpg")}}
    rec = _assess(view, "instruct", **ctx)
    commercial = rec.verdicts["commercial/train"]
    assert commercial.verdict.value == F  # NC image beats the CC BY 4.0 text and the ToU
    assert commercial.reasons == ("image (coco) is CC-BY-NC-2.0",)
    research = rec.verdicts["research/train"].obligations
    assert any("CC BY-NC 2.0" in o for o in research)
    assert any("CC BY 4.0" in o for o in research)
    assert any("OpenAI" in o for o in research)


def test_opt_out_signal_forbids_commercial_training_of_a_licensed_image() -> None:
    url = "http://images.example.com/1.jpg"
    view = RecordView(0, "000000000009", "coco/train2017/000000000009.jpg", url=url)
    ctx = {"coco_licenses": {4: "CC-BY-2.0"}, "coco_images": {9: (4, "")}}
    clean = _assess(view, "mix", **ctx)
    opted = _assess(view, "mix", opt_outs={url: ("x-robots-tag",)}, **ctx)
    assert clean.verdicts["commercial/train"].verdict.value != F
    assert opted.opt_out and opted.verdicts["commercial/train"].verdict.value == F


# ---- the library call on files -----------------------------------------------------------------


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _coco_file(
    path: Path, licenses: dict[int, tuple[str, str]], images: dict[int, tuple[int, str]]
) -> Path:
    """A COCO annotation file with what the licence join reads: licence id -> (name, url),
    image id -> (licence id, flickr url)."""
    coco = {
        "licenses": [{"id": i, "name": name, "url": url} for i, (name, url) in licenses.items()],
        "images": [
            {"id": i, "license": lic, "flickr_url": url} for i, (lic, url) in images.items()
        ],
    }
    path.write_text(json.dumps(coco), encoding="utf-8")
    return path


def _lcs_meta(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "blip_laion_cc_sbu_558k_meta.json",
        [
            {
                "id": "004539375",
                "image": "00453/004539375.jpg",
                "blip_caption": "a mattress",
                "url": "http://ec1.ostkcdn.com/images/products/8111140/P15459545.jpg",
            },
            {
                "id": "004539376",
                "image": "00453/004539376.jpg",
                "blip_caption": "a dog",
                "url": "http://static.flickr.com/2723/4385058960_b0f291553e.jpg",
            },
        ],
    )


def test_license_files_totals_and_opt_out_from_the_url_store(tmp_path: Path) -> None:
    from audit.store import Store
    from audit.store import urls as url_store

    meta = _lcs_meta(tmp_path)
    with Store(tmp_path / "state.sqlite") as store:
        probe = url_store.UrlProbe(
            "http://static.flickr.com/2723/4385058960_b0f291553e.jpg",
            "opt_out",
            200,
            "X-Robots-Tag: noai",
            None,
            time.time(),
        )
        url_store.record(store, [probe])
        result = license_files([meta], use="commercial", store=store)
    stats = msgspec.to_builtins(result)
    assert stats["records"] == 2 and stats["opt_out"] == 1 and stats["inferred"] == 2
    assert stats["by_source"]["sbu"]["commercial/train"] == {F: 1}
    assert stats["by_source"]["lcs_unresolved"]["commercial/train"] == {F: 1}
    assert stats["usable"] == {
        "research/train": 0,
        "research/redistribute-annotations": 2,
        "research/redistribute-images": 0,
        "commercial/train": 0,
        "commercial/redistribute-annotations": 2,
        "commercial/redistribute-images": 0,
    }
    assert "2 records usable for research redistribute-annotations" in stats["usable_lines"]
    codes = [f.code for f in result.findings]
    assert codes.count("license.forbidden") == 2 and codes.count("license.opt_out") == 1
    opt = next(f for f in result.findings if f.code == "license.opt_out")
    assert opt.index == 1 and opt.record_id == "004539376"


def test_chat_file_joins_urls_from_its_metadata(tmp_path: Path) -> None:
    meta = _lcs_meta(tmp_path)
    chat = _write(
        tmp_path / "blip_laion_cc_sbu_558k.json",
        [
            {
                "id": "004539376",
                "image": "00453/004539376.jpg",
                "conversations": [
                    {"from": "human", "value": "What is this?\n<image>"},
                    {"from": "gpt", "value": "a dog"},
                ],
            },
        ],
    )
    result = license_files([chat], metadata=meta)
    assert set(result.by_source) == {"sbu"}
    assert "BSD-3-Clause" in result.by_license


def _coco_record(image_id: int) -> dict[str, object]:
    name = f"{image_id:012d}"
    return {
        "id": name,
        "image": f"coco/train2017/{name}.jpg",
        "conversations": [
            {"from": "human", "value": INSTR},
            {"from": "gpt", "value": "A <b>cat</b>."},
        ],
    }


def test_attribution_export_jsonl_and_markdown(tmp_path: Path) -> None:
    """CC BY 2.0 §4: per part, the licence and its URL, author and title (unknown), the Flickr
    photo page from COCO's flickr_url, and whether the image was modified."""
    chat = _write(tmp_path / "mix.json", [_coco_record(9), _coco_record(10), _coco_record(11)])
    coco = _coco_file(
        tmp_path / "coco.json",
        {4: ("Attribution License", "http://creativecommons.org/licenses/by/2.0/")},
        {
            9: (4, "http://farm1.staticflickr.com/51/2970773875_164f0c0b83_z.jpg"),
            10: (4, "http://farm1.staticflickr.com/52/1234567890_abcdef0123.jpg"),
        },
    )
    out = tmp_path / "attribution.jsonl"
    license_files([chat], use="research", attribution_out=out, coco_annotations=coco)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    image = rows[0]
    assert image == {
        "file": str(chat),
        "index": 0,
        "record_id": "000000000009",
        "part": "image",
        "source": "coco",
        "license": "CC-BY-2.0",
        "license_url": "http://creativecommons.org/licenses/by/2.0/",
        "author": None,
        "title": None,
        "photo_page": "https://www.flickr.com/photo.gne?id=2970773875",
        "source_url": "http://farm1.staticflickr.com/51/2970773875_164f0c0b83_z.jpg",
        "modified": None,
    }
    parts = [(r["record_id"], r["part"], r["license"]) for r in rows]
    assert ("000000000009", "annotation", "CC-BY-4.0") in parts
    assert ("000000000009", "text", "CC-BY-4.0") in parts
    assert ("000000000011", "image", "LicenseRef-COCO-image-unresolved") in parts

    md = tmp_path / "attribution.md"
    license_files([chat], use="research", attribution_out=md, coco_annotations=coco)
    text = md.read_text()
    assert text.startswith("# Attribution")
    cc_by_2 = text.index("## CC-BY-2.0")
    assert cc_by_2 < text.index("## CC-BY-4.0")  # grouped by licence, in order
    assert (
        "- `000000000010` image: author unknown, title unknown, photo page "
        "https://www.flickr.com/photo.gne?id=1234567890, licence "
        "http://creativecommons.org/licenses/by/2.0/, modified unknown" in text
    )
    assert "annotation parts from coco: credit Microsoft COCO, COCO Consortium" in text
    assert "<b>" not in text
    assert not list(tmp_path.glob(".attribution*"))  # no temp files left behind


def test_settings_flip_a_file_verdict(tmp_path: Path) -> None:
    chat = _write(
        tmp_path / "chat.json",
        [
            {
                "id": "GCC_train_002582585",
                "image": "GCC_train_002582585.jpg",
                "conversations": [
                    {"from": "human", "value": "Describe the image concisely.\n<image>"},
                    {"from": "gpt", "value": "olive oil is a healthy ingredient used liberally ."},
                ],
            },
        ],
    )
    default = license_files([chat], use="research")
    exception = license_files(
        [chat], use="research", settings=LicenseConfig(research_exception=True)
    )
    assert default.usable["research/train"] == 0
    codes = ["license.card_scope", "license.unknown", "license.summary"]
    assert [f.code for f in default.findings] == codes
    # a research exception makes unlicensed images conditional, never allowed (issue 10)
    assert exception.usable["research/train"] == 0
    codes = ["license.card_scope", "license.conditional", "license.summary"]
    assert [f.code for f in exception.findings] == codes
    assert default.dataset_verdict["research/train"] == U
    assert exception.dataset_verdict["research/train"] == C
    card = default.findings[0].message
    assert "LLaVA-CC3M-Pretrain-595K" in card and "`license: other`" in card


@pytest.mark.realdata
def test_card_scope_counts_records_the_card_licence_does_not_cover(
    realdata: Path, tmp_path: Path
) -> None:
    coco = realdata / "coco_licenses.json"
    data = [
        {
            "id": img["file_name"][:-4],
            "image": img["file_name"],
            "conversations": [{"from": "human", "value": INSTR}, {"from": "gpt", "value": "A."}],
        }
        for img in json.loads(coco.read_text())["images"]
    ]
    chat = _write(tmp_path / "llava_instruct_150k.json", data)
    result = license_files([chat], coco_annotations=coco)
    (card,) = [f for f in result.findings if f.code == "license.card_scope"]
    assert "declares CC-BY-4.0" in card.message and "9d451dc" in card.message
    assert "40 of 40 records" in card.message  # NC images, and the OpenAI terms on the rest


def test_share_alike_conflict_when_image_and_annotations_are_redistributed_together(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[sources.coco.components.source_annotation]\nlicense = "CC-BY-SA-2.0"\n')
    settings = LicenseConfig(policy=str(policy))
    chat = _write(
        tmp_path / "llava_instruct_150k.json",
        [
            {
                "id": "000000000009",
                "image": "000000000009.jpg",
                "conversations": [
                    {"from": "human", "value": INSTR},
                    {"from": "gpt", "value": "A."},
                ],
            },
        ],
    )
    coco = _coco_file(
        tmp_path / "coco.json",
        {
            1: (
                "Attribution-NonCommercial-ShareAlike License",
                "http://creativecommons.org/licenses/by-nc-sa/2.0/",
            )
        },
        {9: (1, "http://f/9.jpg")},
    )
    both = ["redistribute-images", "redistribute-annotations"]
    result = license_files([chat], use=both, coco_annotations=coco, settings=settings)
    (conflict,) = [f for f in result.findings if f.code == "license.share_alike_conflict"]
    assert "CC-BY-NC-SA-2.0" in conflict.message and "CC-BY-SA-2.0" in conflict.message
    alone = license_files(
        [chat], use="redistribute-images", coco_annotations=coco, settings=settings
    )
    assert not [f for f in alone.findings if f.code == "license.share_alike_conflict"]


def test_runner_entry_uses_the_config(tmp_path: Path) -> None:
    from audit import config as config_mod
    from audit.licensing import license_dataset

    _write(
        tmp_path / "chat.json",
        [
            {
                "id": "GCC_train_000000001",
                "image": "GCC_train_000000001.jpg",
                "conversations": [
                    {"from": "human", "value": "Describe the image concisely.\n<image>"},
                    {"from": "gpt", "value": "a dog ."},
                ],
            },
        ],
    )
    (tmp_path / "p.toml").write_text('[licenses.NOASSERTION]\nresearch = "unknown"\n')
    cfg = tmp_path / "audit.toml"
    cfg.write_text(
        '[[datasets]]\nname = "cc3m"\nchat = "chat.json"\nimage_origin = "llava-images-zip"\n'
        '[use]\npurpose = "commercial"\nredistribute_images = true\n'
        '[license]\npolicy = "p.toml"\n'
    )
    config = config_mod.load(cfg)
    verdicts: dict[int, str] = {}
    result = license_dataset(config.dataset("cc3m"), config, verdicts_out=verdicts)
    assert verdicts == {0: F}
    assert result.uses == ["commercial/train", "commercial/redistribute-images"]
    assert result.image_origin == "llava-images-zip"
    (forbidden,) = [f for f in result.findings if f.code == "license.forbidden"]
    assert "forbidden for commercial train" in forbidden.message
    assert "forbidden for commercial redistribute-images" in forbidden.message
    assert forbidden.dataset == "cc3m"


def test_vg_and_gqa_images_taken_from_coco_get_the_coco_licence(tmp_path: Path) -> None:
    records = [
        {"id": "1", "image": "vg/VG_100K/1.jpg"},
        {"id": "2", "image": "gqa/images/2.jpg"},
        {"id": "3", "image": "vg/VG_100K_2/3.jpg"},  # a YFCC image: no COCO id
    ]
    for r in records:
        r["conversations"] = [
            {"from": "human", "value": INSTR},
            {"from": "gpt", "value": "A."},
        ]
    chat = _write(tmp_path / "llava_v1_5_mix665k.json", records)
    vg = tmp_path / "image_data.json"
    vg.write_text(
        json.dumps(
            [
                {"image_id": 1, "coco_id": 9, "flickr_id": None},
                {"image_id": 2, "coco_id": 10, "flickr_id": None},
                {"image_id": 3, "coco_id": None, "flickr_id": 77},
            ]
        )
    )
    coco = _coco_file(
        tmp_path / "coco.json",
        {
            2: (
                "Attribution-NonCommercial License",
                "http://creativecommons.org/licenses/by-nc/2.0/",
            ),
            4: ("Attribution License", "http://creativecommons.org/licenses/by/2.0/"),
        },
        {9: (2, "http://f/9.jpg"), 10: (4, "http://f/10.jpg")},
    )
    got: list[VerdictRow] = []
    license_files(
        [chat],
        use=["commercial/train", "research/train"],
        coco_annotations=coco,
        vg_image_data=vg,
        verdict_sink=got.append,
    )
    rows = {(r.record_id, r.purpose): r for r in got}
    assert rows["1", "commercial"].licenses == ["CC-BY-NC-2.0", "CC-BY-4.0"]
    assert rows["1", "commercial"].verdict == F
    assert rows["1", "research"].verdict == AO
    image = rows["1", "commercial"].evidence[0]
    assert (image.license, image.via) == ("CC-BY-NC-2.0", "COCO licence id 2")
    assert rows["2", "commercial"].licenses == ["CC-BY-2.0", "NOASSERTION"]  # GQA: no licence
    assert rows["3", "commercial"].licenses[0] == "LicenseRef-VG-image-unresolved"
    without = license_files([chat], use="commercial", coco_annotations=coco)
    assert without.by_license.get("CC-BY-NC-2.0") is None


def test_configured_source_names_only_what_the_records_do_not_say() -> None:
    def prov(view: RecordView, kind: str, source: str) -> tuple[str, bool, tuple[str, ...]]:
        components = {n: tuple(s.components) for n, s in POLICY.sources.items()}
        p = derive(
            view,
            kind=kind,
            hosts=POLICY.lcs.hosts,
            lcs_fallback=POLICY.lcs.fallback,
            source_components=components,
            source=source,
        )
        return p.source, p.inferred, tuple(part.source for part in p.parts)

    instruct = RecordView(0, "000000000009", "000000000009.jpg", instruction=INSTR)
    assert prov(instruct, "instruct", "coco") == ("coco", False, ("coco", "coco", "gpt4_generated"))
    own = RecordView(0, "x", "photos/x.png")
    assert prov(own, "generic", "laion") == ("laion", False, ("laion", "laion"))
    lcs = RecordView(0, "004539375", "00453/004539375.jpg", url="http://ec1.ostkcdn.com/a.jpg")
    assert prov(lcs, "lcs-chat", "laion") == ("laion", False, ("laion", "blip_caption"))
    sbu = lcs._replace(url="http://static.flickr.com/1/2.jpg")
    assert prov(sbu, "lcs-chat", "laion") == ("sbu", True, ("sbu", "blip_caption"))
