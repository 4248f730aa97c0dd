"""Findings: the one value every check produces, and the catalogue of stable codes.

A finding is data, not a log line: checks return them, the CLI and reports render them, the gate
counts them. Codes are stable dotted slugs; renaming one breaks users' gate configs and baselines,
so add new codes rather than repurposing old ones.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec


class Severity(enum.StrEnum):
    """How bad a finding is for training (DESIGN.md "Findings")."""

    ERROR = "error"  # would crash, be silently dropped or mis-trained, or is forbidden for the use
    WARNING = "warning"  # suspicious but trainable
    INFO = "info"  # statistics

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One observation about one record (or a whole file when ``index`` is None)."""

    dataset: str
    file: str
    index: int | None
    record_id: str | None
    code: str
    severity: Severity
    message: str


@dataclass(frozen=True)
class CodeInfo:
    """Catalogue entry: what a code means, shown beside findings in reports."""

    code: str
    severity: Severity
    title: str
    explanation: str


E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

_ENTRIES: tuple[CodeInfo, ...] = (
    # ---- file level (spec/llava-data.md §5 rules 1-4) -------------------------------------------
    CodeInfo(
        "file.empty",
        E,
        "Empty file",
        "The file has no bytes (or only whitespace). LLaVA's trainer calls json.load on it and "
        "crashes before the first step.",
    ),
    CodeInfo(
        "file.invalid_json",
        E,
        "Invalid JSON",
        "The file is not valid JSON at the given position (truncated download, a stray character). "
        "json.load raises and training never starts.",
    ),
    CodeInfo(
        "file.trailing_data",
        E,
        "Trailing data after the JSON value",
        "A complete JSON value is followed by more non-whitespace bytes, often two files concatenated. "
        "json.load rejects the whole file.",
    ),
    CodeInfo(
        "file.not_array",
        E,
        "Top level is not an array",
        "LLaVA's trainer expects one JSON array of records (train.py L665). A top-level object or "
        "scalar cannot be iterated as records.",
    ),
    CodeInfo(
        "file.jsonl",
        E,
        "JSON Lines where a JSON array is expected",
        "The file holds one JSON value per line. LLaVA's trainer uses json.load, which fails on "
        "JSON Lines; convert it to one array. The lines were still audited record by record.",
    ),
    CodeInfo(
        "file.encoding",
        E,
        "Not UTF-8",
        "The file contains bytes that are not valid UTF-8. JSON must be UTF-8; json.load with the "
        "default locale encoding may fail or silently garble text.",
    ),
    CodeInfo(
        "file.bom",
        E,
        "Byte-order mark",
        "The file starts with a UTF-8 byte-order mark. Python's json.load rejects it ('Unexpected "
        "UTF-8 BOM'); strip the first three bytes.",
    ),
    CodeInfo(
        "file.unreadable",
        E,
        "File cannot be read",
        "The path does not exist, is a directory, or cannot be opened; nothing in it was audited.",
    ),
    CodeInfo(
        "file.known_release",
        INFO,
        "Matches a known release",
        "Size and SHA-256 match a published LLaVA release file, so the content is the original.",
    ),
    CodeInfo(
        "file.record_count",
        W,
        "Record count differs from the release",
        "The number of records differs from the published count of this dataset kind "
        "(595,375 / 558,128 / 665,298 / 157,712). Expected for subsets; otherwise a partial "
        "download or an edited file.",
    ),
    # ---- record level (rules 5-13) ----------------------------------------------------------------
    CodeInfo(
        "record.not_object",
        E,
        "Record is not an object",
        "An element of the top-level array is not a JSON object. The trainer indexes it like a dict "
        "and crashes.",
    ),
    CodeInfo(
        "record.invalid_json",
        E,
        "Line is not valid JSON",
        "In a JSON Lines file, this line does not parse as JSON; the other lines were audited.",
    ),
    CodeInfo(
        "record.conversations",
        E,
        "Missing or malformed conversations",
        "The record has no `conversations` list, or it is empty. The trainer reads source[0] and "
        "raises IndexError/KeyError (train.py L425).",
    ),
    CodeInfo(
        "record.id_type",
        W,
        "Unexpected id type",
        "`id` is missing or not a string. The trainer never reads it, but tools built on Arrow "
        "(datasets.load_dataset) fail on mixed int/str ids (an error outside mix665k).",
    ),
    CodeInfo(
        "record.duplicate",
        W,
        "Exact duplicate record",
        "The record repeats an earlier record exactly (id, image and conversations). Ids alone "
        "repeat legitimately in LLaVA data; exact duplicates over-weight one sample.",
    ),
    CodeInfo(
        "record.extra_key",
        INFO,
        "Extra record key",
        "The record has keys other than id, image and conversations. The trainer ignores them "
        "(mix665k's ShareGPT records carry `model`).",
    ),
    CodeInfo(
        "turn.not_object",
        E,
        "Turn is not an object",
        "A conversation turn is not an object with `from` and `value`. The trainer crashes on it.",
    ),
    CodeInfo(
        "turn.keys",
        E,
        "Turn lacks `from` or `value`",
        "A turn must have exactly the keys `from` and `value`, both strings; a missing or "
        "non-string one raises KeyError/TypeError in preprocessing.",
    ),
    CodeInfo(
        "turn.extra_key",
        W,
        "Extra turn key",
        "A turn has keys besides `from` and `value`. They are ignored by the trainer but usually "
        "mean the file was produced by another pipeline.",
    ),
    CodeInfo(
        "turn.role",
        E,
        "Unknown role",
        "`from` must be exactly `human` or `gpt` (lower case). Any other value raises KeyError in "
        "the v1/llama_2/mpt preprocessors (train.py L338, L420, L506).",
    ),
    CodeInfo(
        "turn.order",
        E,
        "Roles do not alternate",
        "Turns must alternate human, gpt, human, gpt ... and end with gpt. preprocess_v1 asserts the "
        "alternation (L430-433) and an odd count leaves the last round without an answer, which "
        "masks the whole sample (tokenization mismatch).",
    ),
    CodeInfo(
        "turn.leading_gpt",
        W,
        "Conversation starts with gpt",
        "The first turn is from gpt. preprocess_v1 silently drops it (L425-427); the rest trains.",
    ),
    CodeInfo(
        "turn.empty_value",
        E,
        "Empty turn value",
        "A turn's value is empty or whitespace. In v1 it renders without separator and the sample is "
        "silently masked; a text-only record with only empty values crashes the length sampler.",
    ),
    CodeInfo(
        "turn.eos_token",
        E,
        "Value contains </s>",
        "A value contains the literal `</s>`, the v1 round separator; label masking splits inside the "
        "value and the sample is silently masked.",
    ),
    CodeInfo(
        "turn.role_marker",
        W,
        "Value contains a role marker",
        "A value contains ` ASSISTANT: `, `USER: ` or `###`, which the templates use as separators; "
        "masking may cut the value.",
    ),
    CodeInfo(
        "turn.count",
        E,
        "Wrong number of turns",
        "Pretraining files (CC-3M, LCS-558K) need exactly 2 turns: preprocess_plain asserts "
        "len(source) == 2 (L595).",
    ),
    CodeInfo(
        "turn.too_long",
        W,
        "Likely longer than model_max_length",
        "The estimated token count plus the image tokens exceeds 2048; the collator truncates and the "
        "end of the answer is silently not trained.",
    ),
    CodeInfo(
        "image_token.count",
        E,
        "Wrong number of <image> tokens",
        "A record with an image needs `<image>` exactly once. None: the image is silently ignored; "
        "two or more in different turns: image features misalign and can raise IndexError.",
    ),
    CodeInfo(
        "image_token.position",
        E,
        "<image> outside the first human turn",
        "`<image>` must be in turn 0 (human). In a gpt turn it is moved into the answer; "
        "preprocess_plain asserts it in turn 0 (L596).",
    ),
    CodeInfo(
        "image_token.placement",
        W,
        "<image> neither at start nor end",
        "`<image>` is in the first turn but not as `<image>\\n...` or `...\\n<image>`. The trainer "
        "moves it to the start anyway; the original data never does this.",
    ),
    CodeInfo(
        "image_token.text_only",
        E,
        "<image> in a text-only record",
        "A record without `image` contains `<image>`; it is tokenized as plain text.",
    ),
    CodeInfo(
        "image.path",
        E,
        "Bad image path",
        "`image` must be a non-empty relative path string (no leading `/`, no `..`). A list, an empty "
        "string or an absolute path crashes or escapes --image_folder.",
    ),
    CodeInfo(
        "image.path_pattern",
        E,
        "Image path does not follow the dataset's naming",
        "The `image` value does not have the form this dataset kind uses (e.g. `id + '.jpg'` for "
        "CC-3M, `id[:5]/id.jpg` for LCS-558K, a known folder prefix for mix665k), so it will not be "
        "found under the standard image folder.",
    ),
    CodeInfo(
        "id.pattern",
        E,
        "Id does not follow the dataset's naming",
        "The `id` does not match the pattern of this dataset kind (GCC_train_ + 9 digits, 9 digits, "
        "12 digits). Usually a record from another file was mixed in.",
    ),
    CodeInfo(
        "prompt.unknown",
        W,
        "Unknown instruction prompt",
        "The human instruction is not one of the known prompt lists of this dataset kind; training "
        "works, but the data did not come from the original release.",
    ),
    CodeInfo(
        "mix.prefix",
        E,
        "Unknown mix665k image folder",
        "mix665k images live under coco/train2017, gqa/images, ocr_vqa/images, "
        "textvqa/train_images, vg/VG_100K or vg/VG_100K_2; any other prefix is not in the download.",
    ),
    CodeInfo(
        "mix.model_key",
        INFO,
        "Text-only record without `model`",
        'ShareGPT text-only records in mix665k carry `"model": ""`; this one does not.',
    ),
    # ---- cross-file (chat vs metadata) ----------------------------------------------------------
    CodeInfo(
        "xfile.missing_metadata",
        W,
        "Record missing from metadata",
        "The chat record has no metadata record with the same id, so its source URL and caption "
        "cannot be checked (provenance and licence audit lose it).",
    ),
    CodeInfo(
        "xfile.missing_chat",
        W,
        "Metadata without a chat record",
        "A metadata record has no chat record with the same id; harmless for training, but the two "
        "files are out of step.",
    ),
    CodeInfo(
        "xfile.image_mismatch",
        E,
        "Chat and metadata disagree on the image",
        "The chat record and its metadata name different image files; one of the two is wrong.",
    ),
    CodeInfo(
        "xfile.caption_mismatch",
        W,
        "CC-3M caption differs from the gpt answer",
        "In CC-3M chat.json the gpt answer is the raw CC-3M caption; it differs from the metadata "
        "caption for this id.",
    ),
    CodeInfo(
        "metadata.field",
        E,
        "Malformed metadata record",
        "A metadata record lacks an id, image or url field, or has one of the wrong type.",
    ),
    # ---- statistics -------------------------------------------------------------------------------
    CodeInfo(
        "stats.summary",
        INFO,
        "File statistics",
        "Counts of records, turns, image and text-only records for the file.",
    ),
    CodeInfo(
        "stats.image_token_position",
        INFO,
        "<image> position",
        "How many records put `<image>` at the start vs the end of the first turn.",
    ),
    CodeInfo(
        "stats.prompts",
        INFO,
        "Prompt distribution",
        "How often each known instruction prompt occurs, and how many records use another prompt.",
    ),
    CodeInfo(
        "stats.duplicates",
        INFO,
        "Repeated ids and images",
        "How many ids and image paths occur more than once. LLaVA ids equal source image ids and "
        "repeat legitimately, so this is statistics, not an error.",
    ),
    # ---- images and URLs (issue 3) ----------------------------------------------------------------
    CodeInfo(
        "image.missing",
        E,
        "Image file missing",
        "No image root has the file the record names. LLaVA's trainer opens it without a "
        "try/except, so the run crashes with FileNotFoundError when it reaches this record "
        "(e.g. the 355 OCR-VQA images the official script fails to fetch, VG files absent from "
        "a downstream zip).",
    ),
    CodeInfo(
        "image.empty",
        E,
        "Image file is empty",
        "The image file (or zip member) has zero bytes, as about 170 files in VG_100K_2 do. "
        "PIL cannot identify it and the trainer crashes with UnidentifiedImageError.",
    ),
    CodeInfo(
        "image.corrupt",
        E,
        "Image cannot be decoded",
        "The bytes are not an image PIL can open or decode (an HTML error page saved as .jpg, "
        "a damaged header or a zip member that fails its CRC). The trainer crashes on it.",
    ),
    CodeInfo(
        "image.truncated",
        E,
        "Image is truncated",
        "The image header is fine but the data stops early (an interrupted download). "
        "Image.verify() does not notice; decoding the whole stream raises 'image file is "
        "truncated' in the trainer. Only found at --level decode.",
    ),
    CodeInfo(
        "image.unreadable",
        E,
        "Image cannot be read",
        "The file exists but cannot be read (permissions, I/O error, an encrypted zip member). "
        "The trainer would fail on it the same way.",
    ),
    CodeInfo(
        "image.too_large",
        E,
        "Image exceeds the decompression-bomb limit",
        "Width times height is above the pixel limit (Pillow's default raises "
        "DecompressionBombError above 178,956,970 pixels), so the trainer crashes on it; a "
        "deliberate bomb would also exhaust memory. The audit reads only its header.",
    ),
    CodeInfo(
        "image.format_mismatch",
        W,
        "Image format differs from the file extension",
        "The content is another format than the extension says (OCR-VQA's GIFs saved as .jpg). "
        "PIL sniffs the content, so training works, but tools that trust the extension "
        "(jpeginfo, some loaders and CDNs) mis-handle the file.",
    ),
    CodeInfo(
        "stats.images",
        INFO,
        "Local image statistics",
        "Per file: records with an image, how many were missing, broken or fine, the missing "
        "rate, formats and the spread of image sizes.",
    ),
    CodeInfo(
        "url.dead",
        W,
        "Source URL is gone",
        "The image's source URL answers 404 Not Found or 410 Gone. The image cannot be fetched "
        "again from its source (LLaVA ships images.zip because ~15% of CC-3M was already gone in "
        "2023; about 30% is by 2024). Training from a local copy still works; the gate decides "
        "on the rate, not the single record.",
    ),
    CodeInfo(
        "url.forbidden",
        W,
        "Source URL refuses access",
        "The server answers 401, 403 or 451. Mostly persistent (hot-link protection, removed "
        "content); retrying with a browser User-Agent recovered only about 3% on CC12M.",
    ),
    CodeInfo(
        "url.http_error",
        W,
        "Source URL answers with another HTTP error",
        "A 4xx other than 401/403/404/410/451 (including 429 Too Many Requests still answered after "
        "every retry, or a Retry-After longer than the configured cap), or an unexpected 1xx/3xx.",
    ),
    CodeInfo(
        "url.server_error",
        W,
        "Source server error",
        "The server answered 5xx on every attempt (retried with exponential backoff, honouring "
        "Retry-After). Often transient: the next nightly run re-probes it after the TTL.",
    ),
    CodeInfo(
        "url.timeout",
        W,
        "Source URL timed out",
        "No connection or no answer within the configured timeout. Connect timeouts are retried; a "
        "server that accepts but never answers is not, to keep a nightly run bounded.",
    ),
    CodeInfo(
        "url.dns",
        W,
        "Source host does not resolve",
        "The URL's host name has no DNS address (NXDOMAIN): the domain has expired or moved. "
        "Permanent in practice; about 6% of CC12M URLs by 2026.",
    ),
    CodeInfo(
        "url.tls",
        W,
        "TLS failure",
        "The HTTPS handshake failed (expired or mismatched certificate, obsolete protocol). The "
        "image may exist but cannot be fetched securely.",
    ),
    CodeInfo(
        "url.connection",
        W,
        "Connection failed",
        "The connection was refused or reset on every attempt: the host is up but nothing serves "
        "the URL's port, or the server drops clients.",
    ),
    CodeInfo(
        "url.not_image",
        W,
        "Source URL does not return an image",
        "The server answers 2xx but the first bytes are not an image format PIL reads (an HTML "
        "'not found' page with status 200, an empty body, SVG). Magic bytes decide, the "
        "Content-Type is only quoted: PIL sniffs content too.",
    ),
    CodeInfo(
        "url.truncated",
        W,
        "Source image is truncated",
        "The whole image was read but it stops before its end marker (JPEG EOI, PNG IEND), or the "
        "transfer broke off before Content-Length. A re-download gives a damaged image.",
    ),
    CodeInfo(
        "url.placeholder",
        W,
        "Source URL serves a placeholder",
        "The URL redirects to a known 'photo unavailable' image (Flickr, Imgur removed) or serves "
        "bytes whose SHA-256 is a known placeholder: a successful download that is not the "
        "original photo. The lists are configurable (urls.placeholder_urls, placeholder_sha256).",
    ),
    CodeInfo(
        "url.opt_out",
        W,
        "Source opts out of AI use",
        "The image answers with an X-Robots-Tag directive noai or noimageai (for all agents or for "
        "llava-audit), the opt-out signal img2dataset honours. The image exists; the licence stage "
        "decides what the opt-out means for the declared use.",
    ),
    CodeInfo(
        "url.redirects",
        W,
        "Too many redirects",
        "The URL redirects in a loop or through more hops than urls.max_redirects; no image was "
        "reached.",
    ),
    CodeInfo(
        "url.invalid",
        W,
        "Malformed source URL",
        "The value is not an http(s) URL with a host, so it cannot be probed or re-downloaded.",
    ),
    CodeInfo(
        "url.refused",
        W,
        "URL points to a private address (not probed)",
        "The host is, or resolves to, a loopback, private, link-local or other non-public address "
        "(or a redirect leads there). Dataset URLs are untrusted, so nothing was sent; allow it "
        "with urls.allow_private or urls.allow_networks for an intranet mirror.",
    ),
    CodeInfo(
        "url.stats",
        INFO,
        "Source URL statistics",
        "Per file: URLs, how many were probed now or taken from the cache, counts per status "
        "class, the missing rate beside the ~15% LLaVA documents for CC-3M, and the domains with "
        "the most missing images.",
    ),
    # ---- licences (issue 4) -----------------------------------------------------------------------
    CodeInfo(
        "license.forbidden",
        E,
        "Forbidden for the declared use",
        "At least one part of the record (image, source annotation, generated text) is under a "
        "licence or restriction that forbids the declared use, e.g. a non-commercial COCO image in "
        "commercial training, or an image from LLaVA's images.zip (research reproduction only) "
        "redistributed. The most restrictive part decides (spec/licensing.md §8.4); drop the record "
        "or obtain the rights.",
    ),
    CodeInfo(
        "license.unknown",
        W,
        "No known licence for the declared use",
        "No licence is known for a part of these records (all rights reserved web images, sources "
        "without a licence statement). Unknown never means allowed: research use relies on a "
        "statutory exception (set license.research_exception if one covers you); other uses need "
        "the rights holder's permission.",
    ),
    CodeInfo(
        "license.conditional",
        W,
        "Allowed only under a condition",
        "These records are allowed only if an open condition holds: training on no-derivatives "
        "images (unsettled whether training is a derivative), OpenAI terms on generated text for "
        "commercial models, or unverified per-image licences. Decide with counsel and record the "
        "answer in the [license] settings of audit.toml.",
    ),
    CodeInfo(
        "license.opt_out",
        W,
        "Source URL opted out of AI training",
        "The URL probe saw an X-Robots-Tag noai/noimageai header on the record's source URL: the "
        "rights holder reserved text and data mining (EU DSM Art. 4(3)). Commercial training must "
        "honour it; only a research exception without opt-out (Art. 3) can still apply.",
    ),
    CodeInfo(
        "license.coco_unresolved",
        W,
        "COCO per-image licence unresolved",
        "Records use COCO images but their per-image Flickr licence (COCO licence ids 1-8, 69 % "
        "non-commercial in train2017) could not be joined: no COCO annotation file was given, or "
        "the image id is not in it. Their verdicts stay unknown or conditional until joined.",
    ),
    CodeInfo(
        "license.summary",
        INFO,
        "Licence verdict totals",
        "Per file: records per verdict for the declared use, and how many records are usable for "
        "each use (research, commercial, redistribution of images and of annotations).",
    ),
    # ---- takedown (issue 4) -----------------------------------------------------------------------
    CodeInfo(
        "takedown.present",
        E,
        "Taken-down item is back",
        "The record carries a record id, image path, URL or image hash that a takedown request put "
        "on the blocklist (`llava-audit takedown apply`). It must stay out of every dataset and "
        "every later build: remove the record again (use the cleaned copy) and find where it came "
        "back from.",
    ),
    CodeInfo(
        "takedown.pending",
        W,
        "Named in an open takedown request",
        "The record matches an identifier of a takedown request that has been recorded but not yet "
        "applied. Training on it now may breach the request; run `llava-audit takedown apply` or "
        "record why the request was not acted on.",
    ),
    # ---- expectations and service (issue 5) -------------------------------------------------------
    CodeInfo(
        "expectation.failed",
        E,
        "Expectation suite rule failed",
        "A rule of the dataset kind's suite in `expectations/` failed on the per-record table (row "
        "count, id or image path pattern, missing-image rate, licence verdicts, duplicates). The "
        "severity is the rule's own (critical = error, warning, info); the message names the rule, "
        "the column, how many rows broke it and example record indexes. Edit the suite to change it.",
    ),
    CodeInfo(
        "expectation.invalid",
        E,
        "Expectation could not be evaluated",
        "Great Expectations could not evaluate a rule of the suite, usually because it names a column "
        "the per-record table does not have (see expectations/README.md) or has a bad argument; the "
        "rule checked nothing.",
    ),
)

CATALOGUE: dict[str, CodeInfo] = {entry.code: entry for entry in _ENTRIES}
if len(CATALOGUE) != len(_ENTRIES):  # pragma: no cover - guards the table above
    raise RuntimeError("duplicate finding code in the catalogue")


def info(code: str) -> CodeInfo:
    """Catalogue entry for ``code``; unknown codes are a programming error."""
    return CATALOGUE[code]


def make(
    code: str,
    message: str,
    *,
    dataset: str,
    file: str,
    index: int | None = None,
    record_id: str | int | None = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding with the catalogue's severity unless a rule overrides it (per-kind rules)."""
    entry = CATALOGUE[code]
    return Finding(
        dataset=dataset,
        file=file,
        index=index,
        record_id=None if record_id is None else str(record_id),
        code=code,
        severity=severity or entry.severity,
        message=message,
    )


_ENCODER = msgspec.json.Encoder()


def to_jsonl(findings: Iterable[Finding]) -> bytes:
    """Findings as JSON Lines, the `--findings` contract of DESIGN.md."""
    return b"".join(_ENCODER.encode(f) + b"\n" for f in findings)


def from_jsonl(data: bytes) -> list[Finding]:
    """Read findings written by :func:`to_jsonl` (baselines, report history)."""
    decoder = msgspec.json.Decoder(Finding)
    return [decoder.decode(line) for line in data.splitlines() if line.strip()]


def count_by_severity(findings: Iterable[Finding]) -> dict[Severity, int]:
    counts = dict.fromkeys(Severity, 0)
    for f in findings:
        counts[f.severity] += 1
    return counts
