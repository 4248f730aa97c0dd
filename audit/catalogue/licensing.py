"""Licence verdicts and takedowns (issue 4)."""

from __future__ import annotations

from audit.catalogue.base import CodeInfo, Severity
from audit.catalogue.codes import Code

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

ENTRIES: tuple[CodeInfo, ...] = (
    # ---- licences (issue 4) -----------------------------------------------------------------------
    CodeInfo(
        Code.LICENSE_FORBIDDEN,
        E,
        "Forbidden for the declared use",
        "At least one part of the record (image, source annotation, generated text) is under a "
        "licence or restriction that forbids the declared use, e.g. a non-commercial COCO image in "
        "commercial training, or an image from LLaVA's images.zip (research reproduction only) "
        "redistributed. The most restrictive part decides; drop the record or obtain the rights.",
    ),
    CodeInfo(
        Code.LICENSE_UNKNOWN,
        W,
        "No known licence for the declared use",
        "No licence is known for a part of these records (all rights reserved web images, sources "
        "without a licence statement). Unknown never means allowed: research use relies on a "
        "statutory exception (set license.research_exception if one covers you); other uses need "
        "the rights holder's permission.",
    ),
    CodeInfo(
        Code.LICENSE_CONDITIONAL,
        W,
        "Allowed only under a condition",
        "These records are allowed only if an open condition holds: training on no-derivatives "
        "images (unsettled whether training is a derivative), OpenAI terms on generated text for "
        "commercial models, or unverified per-image licences. Decide with counsel and record the "
        "answer in the [license] settings of audit.toml.",
    ),
    CodeInfo(
        Code.LICENSE_OPT_OUT,
        W,
        "Source URL opted out of AI training",
        "The URL probe saw a machine-readable opt-out (an X-Robots-Tag noai/noimageai header) on the "
        "record's source URL: the rights holder reserved text and data mining (EU DSM Art. 4(3)). "
        "Commercial training must honour it; research use is only conditional, as the exception "
        "without opt-out (Art. 3) covers research organisations and cultural heritage institutions.",
    ),
    CodeInfo(
        Code.LICENSE_DERIVATIVE,
        W,
        "Image differs from its original (a derivative)",
        "The image file is not the original the licence covers: its dimensions differ from the "
        "ones the COCO annotation file records, so it was resized or re-encoded. A changed copy is a "
        "derivative: no-derivatives licences (COCO ids 3 and 6) forbid redistributing it, and every "
        "CC licence asks you to indicate the change. Redistribute the unmodified original instead.",
    ),
    CodeInfo(
        Code.LICENSE_COCO_UNRESOLVED,
        W,
        "COCO per-image licence unresolved",
        "Records use COCO images but their per-image Flickr licence (COCO licence ids 1-8, 69 % "
        "non-commercial in train2017) could not be joined: no COCO annotation file was given, or "
        "the image id is not in it. Their verdicts stay unknown or conditional until joined.",
    ),
    CodeInfo(
        Code.LICENSE_SHARE_ALIKE_CONFLICT,
        E,
        "Share-alike licences that cannot be combined",
        "The record's image and annotations are redistributed together, and two of its parts are "
        "under share-alike licences with different elements (e.g. a BY-NC-SA image with BY-SA "
        "annotations). Each requires the combined copy to carry its own licence, so no licence "
        "satisfies both; redistribute them separately or drop the record.",
    ),
    CodeInfo(
        Code.LICENSE_CARD_SCOPE,
        INFO,
        "Dataset card licence vs the records",
        "The dataset card declares one licence for the whole dataset, but it covers only part of "
        "each record (the annotations), or it declares `other` with no licence name or link. The "
        "verdicts come from each record's parts; this compares them with the card's claim.",
    ),
    CodeInfo(
        Code.LICENSE_SUMMARY,
        INFO,
        "Licence verdict totals",
        "Per file: records per verdict for the declared use, and how many records are usable for "
        "each use (research, commercial, redistribution of images and of annotations).",
    ),
    # ---- takedown (issue 4) -----------------------------------------------------------------------
    CodeInfo(
        Code.TAKEDOWN_PRESENT,
        E,
        "Taken-down item is back",
        "The record carries a record id, image path, URL or image hash that a takedown request put "
        "on the blocklist (`llava-audit takedown apply`). It must stay out of every dataset and "
        "every later build: remove the record again (use the cleaned copy) and find where it came "
        "back from.",
    ),
    CodeInfo(
        Code.TAKEDOWN_PENDING,
        E,
        "Named in an open takedown request",
        "The record matches an identifier of a takedown request that has been received but not yet "
        "applied, rejected or exempted. It must not be trained on from the day the request "
        "arrives (GDPR Art. 18 restriction of processing; a DMCA notice likewise): run "
        "`llava-audit takedown apply ID`, or record why the request is not acted on "
        "(`takedown reject` or `takedown exempt`).",
    ),
)
