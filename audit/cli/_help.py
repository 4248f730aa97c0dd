"""Examples for every command's ``--help``, kept in one place so no command ships without one.

Not a command itself (no ``register``). :func:`add_examples` runs once the commands are registered:
a parser that has no epilog of its own gets its examples here, shown as written, and its
description is wrapped to 78 columns (the raw formatter keeps the examples' line breaks).
"""

from __future__ import annotations

import argparse
import textwrap

#: command path ("" for llava-audit itself) -> example command lines
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        "llava-audit demo",
        "llava-audit check llava_instruct_150k.json",
        "llava-audit init && llava-audit run",
    ),
    "check": (
        "llava-audit check llava_instruct_150k.json",
        "llava-audit check chat.json metadata.json --findings findings.jsonl",
        "llava-audit check my_data.json --kind lcs-chat --json",
        "llava-audit check 'my-hf-dataset/data/train-*.parquet'",
    ),
    "images": (
        "llava-audit images chat.json --root images.zip",
        "llava-audit images llava_v1_5_mix665k.json --root playground/data --level decode",
        "llava-audit images --config audit.toml --dataset lcs",
    ),
    "urls": (
        "llava-audit urls blip_laion_cc_sbu_558k_meta.json",
        "llava-audit urls Train_GCC-training.tsv --findings dead-urls.jsonl",
        "llava-audit urls --config audit.toml",
        "llava-audit urls laion-subset/ --column URL",
    ),
    "license": (
        "llava-audit license blip_laion_cc_sbu_558k.json "
        "--metadata blip_laion_cc_sbu_558k_meta.json",
        "llava-audit license --config audit.toml --purpose commercial",
        "llava-audit license llava_instruct_150k.json --coco-annotations "
        "instances_train2017.json --attribution credits.md",
    ),
    "takedown": (
        "llava-audit takedown new --ground gdpr --contact jane@example.org "
        "--url https://example.org/me.jpg",
        "llava-audit takedown list",
        "llava-audit takedown checklist TD-0001 --format html --out checklist.html",
    ),
    "init": ("llava-audit init", "llava-audit init configs/audit.toml --force"),
    "run": ("llava-audit run", "llava-audit run --config configs/audit.toml --debug"),
    "serve": ("llava-audit serve", "llava-audit serve --dir demo/reports --port 8080"),
    "demo": ("llava-audit demo", "llava-audit demo --dir /tmp/llava-demo"),
    "gate": (
        "llava-audit gate --junit gate.xml",
        "llava-audit gate --report reports/20260301T023000Z-1a2b "
        "--baseline reports/20260201T023000Z-3c4d",
    ),
    "export": (
        "llava-audit export --out trainset",
        "llava-audit export --config audit.toml --out trainset --purpose commercial",
        "llava-audit export --out trainset --include-conditional --dry-run",
    ),
    "schedule": (
        "llava-audit schedule --config audit.toml",
        "llava-audit schedule --once --config /data/audit.toml   # in a crontab line",
    ),
}


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and each of its commands (recursively) their examples, when they have none."""
    _walk(parser, "")


def _walk(parser: argparse.ArgumentParser, path: str) -> None:
    examples = EXAMPLES.get(path)
    if examples and not parser.epilog:
        heading = "example:" if len(examples) == 1 else "examples:"
        parser.epilog = "\n".join([heading, *(f"  {line}" for line in examples)])
        if parser.description:
            parser.description = "\n\n".join(
                textwrap.fill(paragraph, 78, break_on_hyphens=False)
                for paragraph in parser.description.split("\n\n")
            )
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    commands = getattr(parser, "commands", None)
    for name, sub in (commands.choices if commands is not None else {}).items():
        _walk(sub, f"{path} {name}".strip())
