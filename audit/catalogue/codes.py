"""Finding codes as constants: a typo in ``Code.URL_OPT_OUT`` is a mypy error, not a silent miss.

This enum is the one place a code's string is written; the catalogue sections attach severity,
title and explanation to each member, and :mod:`audit.catalogue` refuses to import when a member
lacks an entry. A ``Code`` member IS its string (``StrEnum``), so findings JSON, reports, gate
configs and baselines read exactly as before. Renaming a value breaks users' gate configs and
baselines: add a member instead.
"""

from __future__ import annotations

import enum


class Code(enum.StrEnum):
    """Every finding code of the catalogue (members in catalogue order)."""

    # ---- structure (audit/catalogue/structure.py) -----------------------------------------------
    FILE_EMPTY = "file.empty"
    FILE_INVALID_JSON = "file.invalid_json"
    FILE_TRAILING_DATA = "file.trailing_data"
    FILE_NOT_ARRAY = "file.not_array"
    FILE_JSONL = "file.jsonl"
    FILE_ENCODING = "file.encoding"
    FILE_BOM = "file.bom"
    FILE_UNREADABLE = "file.unreadable"
    FILE_KNOWN_RELEASE = "file.known_release"
    FILE_RECORD_COUNT = "file.record_count"
    RECORD_NOT_OBJECT = "record.not_object"
    RECORD_INVALID_JSON = "record.invalid_json"
    RECORD_TOO_DEEP = "record.too_deep"
    RECORD_NON_FINITE = "record.non_finite"
    RECORD_LONE_SURROGATE = "record.lone_surrogate"
    RECORD_CONVERSATIONS = "record.conversations"
    RECORD_ID_TYPE = "record.id_type"
    RECORD_DUPLICATE = "record.duplicate"
    RECORD_EXTRA_KEY = "record.extra_key"
    TURN_NOT_OBJECT = "turn.not_object"
    TURN_KEYS = "turn.keys"
    TURN_EXTRA_KEY = "turn.extra_key"
    TURN_ROLE = "turn.role"
    TURN_ORDER = "turn.order"
    TURN_LEADING_GPT = "turn.leading_gpt"
    TURN_EMPTY_VALUE = "turn.empty_value"
    TURN_EOS_TOKEN = "turn.eos_token"
    TURN_ROLE_MARKER = "turn.role_marker"
    TURN_COUNT = "turn.count"
    TURN_TOO_LONG = "turn.too_long"
    IMAGE_TOKEN_COUNT = "image_token.count"
    IMAGE_TOKEN_POSITION = "image_token.position"
    IMAGE_TOKEN_PLACEMENT = "image_token.placement"
    IMAGE_TOKEN_TEXT_ONLY = "image_token.text_only"
    IMAGE_PATH = "image.path"
    IMAGE_PATH_PATTERN = "image.path_pattern"
    ID_PATTERN = "id.pattern"
    PROMPT_UNKNOWN = "prompt.unknown"
    MIX_PREFIX = "mix.prefix"
    MIX_MODEL_KEY = "mix.model_key"
    XFILE_MISSING_METADATA = "xfile.missing_metadata"
    XFILE_MISSING_CHAT = "xfile.missing_chat"
    XFILE_IMAGE_MISMATCH = "xfile.image_mismatch"
    XFILE_CAPTION_MISMATCH = "xfile.caption_mismatch"
    METADATA_FIELD = "metadata.field"
    STATS_SUMMARY = "stats.summary"
    STATS_IMAGE_TOKEN_POSITION = "stats.image_token_position"
    STATS_PROMPTS = "stats.prompts"
    STATS_DUPLICATES = "stats.duplicates"

    # ---- probes (audit/catalogue/probes.py) -----------------------------------------------------
    IMAGE_MISSING = "image.missing"
    IMAGE_EMPTY = "image.empty"
    IMAGE_CORRUPT = "image.corrupt"
    IMAGE_TRUNCATED = "image.truncated"
    IMAGE_UNREADABLE = "image.unreadable"
    IMAGE_TOO_LARGE = "image.too_large"
    IMAGE_FORMAT_MISMATCH = "image.format_mismatch"
    STATS_IMAGES = "stats.images"
    URL_DEAD = "url.dead"
    URL_FORBIDDEN = "url.forbidden"
    URL_HTTP_ERROR = "url.http_error"
    URL_SERVER_ERROR = "url.server_error"
    URL_TIMEOUT = "url.timeout"
    URL_DNS = "url.dns"
    URL_TLS = "url.tls"
    URL_CONNECTION = "url.connection"
    URL_NOT_IMAGE = "url.not_image"
    URL_TRUNCATED = "url.truncated"
    URL_PLACEHOLDER = "url.placeholder"
    URL_OPT_OUT = "url.opt_out"
    URL_REDIRECTS = "url.redirects"
    URL_INVALID = "url.invalid"
    URL_REFUSED = "url.refused"
    URL_STATS = "url.stats"

    # ---- licensing (audit/catalogue/licensing.py) -----------------------------------------------
    LICENSE_FORBIDDEN = "license.forbidden"
    LICENSE_UNKNOWN = "license.unknown"
    LICENSE_CONDITIONAL = "license.conditional"
    LICENSE_OPT_OUT = "license.opt_out"
    LICENSE_DERIVATIVE = "license.derivative"
    LICENSE_COCO_UNRESOLVED = "license.coco_unresolved"
    LICENSE_SHARE_ALIKE_CONFLICT = "license.share_alike_conflict"
    LICENSE_CARD_SCOPE = "license.card_scope"
    LICENSE_SUMMARY = "license.summary"
    TAKEDOWN_PRESENT = "takedown.present"
    TAKEDOWN_PENDING = "takedown.pending"

    # ---- service (audit/catalogue/service.py) ---------------------------------------------------
    EXPECTATION_FAILED = "expectation.failed"
    EXPECTATION_INVALID = "expectation.invalid"
