"""Provenance per record (spec/licensing.md §8.5 steps 1-2): which sources a record's parts come from.

Pure: a record's image path, URL and first instruction in, (source, component) parts out. The image
path is the strongest signal (`coco/`, `gqa/`, `GCC_train_*`, `NNNNN/NNNNNNNNN.jpg`, ...); the
conversation text only tells which annotation source a mix665k COCO record came from, and anything
read from text or from a URL host is marked as inferred.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from audit.licensing.policy import HostRule


class RecordView(NamedTuple):
    """The few fields of a record that provenance needs, whatever loader produced it."""

    position: int  # 0-based place of the record in its file
    record_id: str | None
    image: str | None
    url: str | None = None
    instruction: str = ""  # the first human turn
    blip_caption: bool = False  # a metadata record carries a BLIP synthetic caption


class Part(NamedTuple):
    """One component of a record and the source it comes from (a tuple: hashed in C, cached on)."""

    source: str
    component: str
    inferred: bool = False


class Provenance(NamedTuple):
    position: int  # 0-based place of the record in its file
    record_id: str | None
    image: str | None
    url: str | None
    source: str  # the record's primary source (its image's, or its text's when it has none)
    parts: tuple[Part, ...]
    inferred: bool
    coco_image_id: int | None = None
    vg_image_id: int | None = None  # Visual Genome / GQA image id (joined to COCO via image_data)


_COCO_NAME = re.compile(r"(?:^|/)(?:COCO_(?:train|val)2014_)?(\d{12})\.jpg$")
_VG_NAME = re.compile(r"/(\d+)\.jpg$")
_GCC = re.compile(r"(?:^|/)GCC_train_\d{9}\.jpg$")
_LCS = re.compile(r"^\d{5}/\d{9}\.jpg$")
_SHORT_ANSWER = "Answer the question using a single word or phrase."
_MULTIPLE_CHOICE = "Answer with the option's letter"
_REGION = (
    "Please provide the bounding box coordinate",
    "Please provide a short description for this region",
)

#: image path prefix -> (image source, annotation source) for the mix665k folders (§2.5, §1.4).
_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("gqa/", "gqa", "gqa"),
    ("ocr_vqa/", "ocrvqa", "ocrvqa"),
    ("textvqa/", "textvqa", "textcaps"),
    ("vg/", "vg", "vg"),
)


# Shared part tuples: records of one kind reuse them, so the evaluator's cache hits by identity.
_CC3M = (Part("cc3m", "image"), Part("cc3m", "caption_alt_text"))
_CC3M_BLIP = (*_CC3M, Part("blip_caption", "synthetic_caption"))
_PREFIX_PARTS = {
    prefix: (Part(image_source, "image"), Part(annotation_source, "source_annotation"))
    for prefix, image_source, annotation_source in _PREFIXES
}
_LCS_PARTS: dict[tuple[str, bool, bool], tuple[Part, ...]] = {}


def _lcs_parts(image_source: str, blip: bool, inferred: bool) -> tuple[Part, ...]:
    parts = _LCS_PARTS.get((image_source, blip, inferred))
    if parts is None:
        image = (Part(image_source, "image", inferred=inferred),)
        parts = (*image, Part("blip_caption", "synthetic_caption")) if blip else image
        _LCS_PARTS[(image_source, blip, inferred)] = parts
    return parts


def coco_image_id(image: str) -> int | None:
    """The COCO image id in a COCO file name (``000000033471.jpg``, ``COCO_train2014_...``)."""
    match = _COCO_NAME.search(image)
    return int(match.group(1)) if match else None


def derive(
    view: RecordView,
    *,
    kind: str,
    hosts: Sequence[HostRule] = (),
    lcs_fallback: str = "lcs_unresolved",
    source_components: Mapping[str, tuple[str, ...]] | None = None,
    source: str | None = None,
) -> Provenance:
    """The record's parts, from its image path first (the strongest evidence).

    ``source`` (the dataset's configured source) names records the tool cannot identify, and
    LCS-558K records whose URL host matches no rule; ``source_components`` lists each policy
    source's components for that case.
    """
    image = view.image
    if kind == "cc3m-tsv":  # a line of the CC-3M TSV: its caption and its image's URL
        return _prov(view, "cc3m", _CC3M)
    if not image:
        if kind in ("mix", "generic") and not view.url and source is None:  # mix665k text-only
            text = (Part("sharegpt", "user_text"), Part("sharegpt", "generated_text"))
            return _prov(view, "sharegpt", text)
        return _configured(view, source, source_components, ("image",))
    if _GCC.search(image):
        return _prov(view, "cc3m", _CC3M_BLIP if view.blip_caption else _CC3M)
    if _LCS.match(image) or kind in ("lcs-chat", "lcs-metadata"):
        image_source, inferred = _lcs_source(view.url, hosts, ""), True
        if not image_source:
            image_source, inferred = (source, False) if source else (lcs_fallback, True)
        blip = kind != "lcs-metadata" or view.blip_caption  # the chat answer is the BLIP caption
        return _prov(view, image_source, _lcs_parts(image_source, blip, inferred))
    for prefix, parts in _PREFIX_PARTS.items():
        if image.startswith(prefix):
            vg_id = _VG_NAME.search(image) if prefix in ("vg/", "gqa/") else None
            vg_image_id = int(vg_id.group(1)) if vg_id else None
            return _prov(view, parts[0].source, parts, vg_image_id=vg_image_id)
    match = _COCO_NAME.search(image)
    if match and (kind in ("instruct", "mix", "generic") or image.startswith("coco/")):
        coco_id = int(match.group(1))
        guessed = kind == "generic" and not image.startswith("coco/")  # a bare 12-digit name
        coco = _coco_parts(view.instruction, kind, guessed)
        return _prov(view, "coco", coco, coco_image_id=coco_id)
    return _configured(view, source, source_components, ("image", "source_annotation"))


def _configured(
    view: RecordView,
    source: str | None,
    source_components: Mapping[str, tuple[str, ...]] | None,
    unknown: tuple[str, ...],
) -> Provenance:
    """A record the tool cannot identify: the configured source's components, else unknown."""
    if source is None:
        return _prov(view, "unknown", tuple(Part("unknown", c) for c in unknown))
    components = (source_components or {}).get(source, unknown)
    return _prov(view, source, tuple(Part(source, c) for c in components))


def _coco_parts(instruction: str, kind: str, guessed: bool) -> tuple[Part, ...]:
    """COCO images carry several annotation sources in mix665k; the prompt format tells which."""
    image = Part("coco", "image", inferred=guessed)
    if kind == "instruct":
        return (image, Part("coco", "source_annotation"), Part("gpt4_generated", "generated_text"))
    if _MULTIPLE_CHOICE in instruction:
        return (image, Part("aokvqa", "source_annotation", inferred=True))
    if _is_region_task(instruction):
        return (image, Part("refcoco", "source_annotation", inferred=True))
    if _SHORT_ANSWER in instruction:
        # VQAv2 and OK-VQA share this prompt in mix665k: the policy source covers both
        return (image, Part("vqav2_or_okvqa", "source_annotation", inferred=True))
    return (
        image,
        Part("coco", "source_annotation"),
        Part("gpt4_generated", "generated_text", inferred=True),
    )


def _is_region_task(instruction: str) -> bool:
    return any(marker in instruction for marker in _REGION)


_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)")
_HOST_SOURCE: dict[tuple[str, tuple[HostRule, ...], str], str] = {}  # hosts repeat a lot


def _lcs_source(url: str | None, hosts: Sequence[HostRule], fallback: str) -> str:
    """LAION, CC-3M or SBU from the URL host; the policy's fallback when no rule matches."""
    match = _HOST.match(url) if url else None
    if match is None:
        return fallback
    key = (match.group(1).lower(), tuple(hosts), fallback)
    source = _HOST_SOURCE.get(key)
    if source is None:
        source = next((rule.source for rule in hosts if rule.matches(key[0])), fallback)
        if len(_HOST_SOURCE) < 100_000:
            _HOST_SOURCE[key] = source
    return source


_INFERRED: dict[tuple[Part, ...], bool] = {}  # a handful of distinct part tuples per file


def _prov(
    view: RecordView,
    source: str,
    parts: tuple[Part, ...],
    coco_image_id: int | None = None,
    vg_image_id: int | None = None,
) -> Provenance:
    inferred = _INFERRED.get(parts)
    if inferred is None:
        inferred = _INFERRED[parts] = any(p.inferred for p in parts)
    return Provenance(
        view.position,
        view.record_id,
        view.image,
        view.url,
        source,
        parts,
        inferred,
        coco_image_id,
        vg_image_id,
    )
