"""Structure stage (issue 2): spec/llava-data.md §5 rules, per kind, cross-file and statistics."""

from __future__ import annotations

from audit.catalogue.base import CodeInfo, Severity
from audit.catalogue.codes import Code

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

ENTRIES: tuple[CodeInfo, ...] = (
    # ---- file level (spec/llava-data.md §5 rules 1-4) -------------------------------------------
    CodeInfo(
        Code.FILE_EMPTY,
        E,
        "Empty file",
        "The file has no bytes (or only whitespace). LLaVA's trainer calls json.load on it and "
        "crashes before the first step.",
    ),
    CodeInfo(
        Code.FILE_INVALID_JSON,
        E,
        "Invalid JSON",
        "The file is not valid JSON at the given position (truncated download, a stray character). "
        "json.load raises and training never starts.",
    ),
    CodeInfo(
        Code.FILE_TRAILING_DATA,
        E,
        "Trailing data after the JSON value",
        "A complete JSON value is followed by more non-whitespace bytes, often two files concatenated. "
        "json.load rejects the whole file.",
    ),
    CodeInfo(
        Code.FILE_NOT_ARRAY,
        E,
        "Top level is not an array",
        "LLaVA's trainer expects one JSON array of records (train.py L665). A top-level object or "
        "scalar cannot be iterated as records.",
    ),
    CodeInfo(
        Code.FILE_JSONL,
        E,
        "JSON Lines where a JSON array is expected",
        "The file holds one JSON value per line. LLaVA's trainer uses json.load, which fails on "
        "JSON Lines; convert it to one array. The lines were still audited record by record.",
    ),
    CodeInfo(
        Code.FILE_ENCODING,
        E,
        "Not UTF-8",
        "The file contains bytes that are not valid UTF-8. JSON must be UTF-8; json.load with the "
        "default locale encoding may fail or silently garble text.",
    ),
    CodeInfo(
        Code.FILE_BOM,
        E,
        "Byte-order mark",
        "The file starts with a UTF-8 byte-order mark. Python's json.load rejects it ('Unexpected "
        "UTF-8 BOM'); strip the first three bytes.",
    ),
    CodeInfo(
        Code.FILE_UNREADABLE,
        E,
        "File cannot be read",
        "The path does not exist, is a directory, or cannot be opened; nothing in it was audited.",
    ),
    CodeInfo(
        Code.FILE_KNOWN_RELEASE,
        INFO,
        "Matches a known release",
        "Size and SHA-256 match a published LLaVA release file, so the content is the original.",
    ),
    CodeInfo(
        Code.FILE_RECORD_COUNT,
        W,
        "Record count differs from the release",
        "The number of records differs from the published count of this dataset kind "
        "(595,375 / 558,128 / 665,298 / 157,712). Expected for subsets; otherwise a partial "
        "download or an edited file.",
    ),
    # ---- record level (rules 5-13) ----------------------------------------------------------------
    CodeInfo(
        Code.RECORD_NOT_OBJECT,
        E,
        "Record is not an object",
        "An element of the top-level array is not a JSON object. The trainer indexes it like a dict "
        "and crashes.",
    ),
    CodeInfo(
        Code.RECORD_INVALID_JSON,
        E,
        "Line is not valid JSON",
        "In a JSON Lines file, this line does not parse as JSON; the other lines were audited.",
    ),
    CodeInfo(
        Code.RECORD_TOO_DEEP,
        E,
        "Record nested too deeply",
        "The record nests arrays or objects about 1,000 levels deep. Python's json.load (LLaVA's "
        "trainer) raises RecursionError on the whole file; the other records were audited.",
    ),
    CodeInfo(
        Code.RECORD_NON_FINITE,
        W,
        "NaN or infinite number",
        "The record holds NaN, Infinity, -Infinity or a number beyond the float range (1e400). "
        "json.load reads them as floats, but they are not JSON: strict parsers (msgspec, Arrow, "
        "other languages) reject the file. The record was still audited.",
    ),
    CodeInfo(
        Code.RECORD_LONE_SURROGATE,
        E,
        "Lone UTF-16 surrogate in a string",
        'A string holds an unpaired surrogate escape such as "\\ud800". json.load accepts it, but '
        "the text cannot be encoded as UTF-8: the tokenizer (or opening an image path) raises "
        "UnicodeEncodeError when training reaches the record. Audited with U+FFFD in its place.",
    ),
    CodeInfo(
        Code.RECORD_CONVERSATIONS,
        E,
        "Missing or malformed conversations",
        "The record has no `conversations` list, or it is empty. The trainer reads source[0] and "
        "raises IndexError/KeyError (train.py L425).",
    ),
    CodeInfo(
        Code.RECORD_ID_TYPE,
        W,
        "Unexpected id type",
        "`id` is missing or not a string. The trainer never reads it, but tools built on Arrow "
        "(datasets.load_dataset) fail on mixed int/str ids (an error outside mix665k).",
    ),
    CodeInfo(
        Code.RECORD_DUPLICATE,
        W,
        "Exact duplicate record",
        "The record repeats an earlier record exactly (id, image and conversations). Ids alone "
        "repeat legitimately in LLaVA data; exact duplicates over-weight one sample.",
    ),
    CodeInfo(
        Code.RECORD_EXTRA_KEY,
        INFO,
        "Extra record key",
        "The record has keys other than id, image and conversations. The trainer ignores them "
        "(mix665k's ShareGPT records carry `model`).",
    ),
    CodeInfo(
        Code.TURN_NOT_OBJECT,
        E,
        "Turn is not an object",
        "A conversation turn is not an object with `from` and `value`. The trainer crashes on it.",
    ),
    CodeInfo(
        Code.TURN_KEYS,
        E,
        "Turn lacks `from` or `value`",
        "A turn must have exactly the keys `from` and `value`, both strings; a missing or "
        "non-string one raises KeyError/TypeError in preprocessing.",
    ),
    CodeInfo(
        Code.TURN_EXTRA_KEY,
        W,
        "Extra turn key",
        "A turn has keys besides `from` and `value`. They are ignored by the trainer but usually "
        "mean the file was produced by another pipeline.",
    ),
    CodeInfo(
        Code.TURN_ROLE,
        E,
        "Unknown role",
        "`from` must be exactly `human` or `gpt` (lower case). Any other value raises KeyError in "
        "the v1/llama_2/mpt preprocessors (train.py L338, L420, L506).",
    ),
    CodeInfo(
        Code.TURN_ORDER,
        E,
        "Roles do not alternate",
        "Turns must alternate human, gpt, human, gpt ... and end with gpt. preprocess_v1 asserts the "
        "alternation (L430-433) and an odd count leaves the last round without an answer, which "
        "masks the whole sample (tokenization mismatch).",
    ),
    CodeInfo(
        Code.TURN_LEADING_GPT,
        W,
        "Conversation starts with gpt",
        "The first turn is from gpt. preprocess_v1 silently drops it (L425-427); the rest trains.",
    ),
    CodeInfo(
        Code.TURN_EMPTY_VALUE,
        E,
        "Empty turn value",
        "A turn's value is empty or whitespace. In v1 it renders without separator and the sample is "
        "silently masked; a text-only record with only empty values crashes the length sampler.",
    ),
    CodeInfo(
        Code.TURN_EOS_TOKEN,
        E,
        "Value contains </s>",
        "A value contains the literal `</s>`, the v1 round separator; label masking splits inside the "
        "value and the sample is silently masked.",
    ),
    CodeInfo(
        Code.TURN_ROLE_MARKER,
        W,
        "Value contains a role marker",
        "A value contains ` ASSISTANT: `, `USER: ` or `###`, which the templates use as separators; "
        "masking may cut the value.",
    ),
    CodeInfo(
        Code.TURN_COUNT,
        E,
        "Wrong number of turns",
        "Pretraining files (CC-3M, LCS-558K) need exactly 2 turns: preprocess_plain asserts "
        "len(source) == 2 (L595).",
    ),
    CodeInfo(
        Code.TURN_TOO_LONG,
        W,
        "Likely longer than model_max_length",
        "The estimated token count plus the image tokens exceeds 2048; the collator truncates and the "
        "end of the answer is silently not trained.",
    ),
    CodeInfo(
        Code.IMAGE_TOKEN_COUNT,
        E,
        "Wrong number of <image> tokens",
        "A record with an image needs `<image>` exactly once. None: the image is silently ignored; "
        "two or more in different turns: image features misalign and can raise IndexError.",
    ),
    CodeInfo(
        Code.IMAGE_TOKEN_POSITION,
        E,
        "<image> outside the first human turn",
        "`<image>` must be in turn 0 (human). In a gpt turn it is moved into the answer; "
        "preprocess_plain asserts it in turn 0 (L596).",
    ),
    CodeInfo(
        Code.IMAGE_TOKEN_PLACEMENT,
        W,
        "<image> neither at start nor end",
        "`<image>` is in the first turn but not as `<image>\\n...` or `...\\n<image>`. The trainer "
        "moves it to the start anyway; the original data never does this.",
    ),
    CodeInfo(
        Code.IMAGE_TOKEN_TEXT_ONLY,
        E,
        "<image> in a text-only record",
        "A record without `image` contains `<image>`; it is tokenized as plain text.",
    ),
    CodeInfo(
        Code.IMAGE_PATH,
        E,
        "Bad image path",
        "`image` must be a non-empty relative path string (no leading `/`, no `..`). A list, an empty "
        "string or an absolute path crashes or escapes --image_folder. The image probe also reports "
        "a path with a NUL byte, and a symlink (the file or a folder on its path) that leads out of "
        "a folder root: it is never opened, so nothing outside the root reaches the report.",
    ),
    CodeInfo(
        Code.IMAGE_PATH_PATTERN,
        E,
        "Image path does not follow the dataset's naming",
        "The `image` value does not have the form this dataset kind uses (e.g. `id + '.jpg'` for "
        "CC-3M, `id[:5]/id.jpg` for LCS-558K, a known folder prefix for mix665k), so it will not be "
        "found under the standard image folder.",
    ),
    CodeInfo(
        Code.ID_PATTERN,
        E,
        "Id does not follow the dataset's naming",
        "The `id` does not match the pattern of this dataset kind (GCC_train_ + 9 digits, 9 digits, "
        "12 digits). Usually a record from another file was mixed in.",
    ),
    CodeInfo(
        Code.PROMPT_UNKNOWN,
        W,
        "Unknown instruction prompt",
        "The human instruction is not one of the known prompt lists of this dataset kind; training "
        "works, but the data did not come from the original release.",
    ),
    CodeInfo(
        Code.MIX_PREFIX,
        E,
        "Unknown mix665k image folder",
        "mix665k images live under coco/train2017, gqa/images, ocr_vqa/images, "
        "textvqa/train_images, vg/VG_100K or vg/VG_100K_2; any other prefix is not in the download.",
    ),
    CodeInfo(
        Code.MIX_MODEL_KEY,
        INFO,
        "Text-only record without `model`",
        'ShareGPT text-only records in mix665k carry `"model": ""`; this one does not.',
    ),
    # ---- cross-file (chat vs metadata) ----------------------------------------------------------
    CodeInfo(
        Code.XFILE_MISSING_METADATA,
        W,
        "Record missing from metadata",
        "The chat record has no metadata record with the same id, so its source URL and caption "
        "cannot be checked (provenance and licence audit lose it).",
    ),
    CodeInfo(
        Code.XFILE_MISSING_CHAT,
        W,
        "Metadata without a chat record",
        "A metadata record has no chat record with the same id; harmless for training, but the two "
        "files are out of step.",
    ),
    CodeInfo(
        Code.XFILE_IMAGE_MISMATCH,
        E,
        "Chat and metadata disagree on the image",
        "The chat record and its metadata name different image files; one of the two is wrong.",
    ),
    CodeInfo(
        Code.XFILE_CAPTION_MISMATCH,
        W,
        "CC-3M caption differs from the gpt answer",
        "In CC-3M chat.json the gpt answer is the raw CC-3M caption; it differs from the metadata "
        "caption for this id.",
    ),
    CodeInfo(
        Code.METADATA_FIELD,
        E,
        "Malformed metadata record",
        "A metadata record lacks an id, image or url field, or has one of the wrong type.",
    ),
    # ---- statistics -------------------------------------------------------------------------------
    CodeInfo(
        Code.STATS_SUMMARY,
        INFO,
        "File statistics",
        "Counts of records, turns, image and text-only records for the file.",
    ),
    CodeInfo(
        Code.STATS_IMAGE_TOKEN_POSITION,
        INFO,
        "<image> position",
        "How many records put `<image>` at the start vs the end of the first turn.",
    ),
    CodeInfo(
        Code.STATS_PROMPTS,
        INFO,
        "Prompt distribution",
        "How often each known instruction prompt occurs, and how many records use another prompt.",
    ),
    CodeInfo(
        Code.STATS_DUPLICATES,
        INFO,
        "Repeated ids and images",
        "How many ids and image paths occur more than once. LLaVA ids equal source image ids and "
        "repeat legitimately, so this is statistics, not an error.",
    ),
)
