"""Small excerpts of the real LLaVA, CC-3M and COCO files, kept in tests/data (see SOURCES.md there).

The per-rule tests break these real records; keeping them in the repository means those tests run
(never skip) in a checkout without ../shared. Whole-file tests still read ../shared/realdata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"

#: 20 LCS-558K chat records (the head of blip_laion_cc_sbu_2k.json).
LCS_CHAT = DATA / "blip_laion_cc_sbu_2k_head20.json"
#: The 5 real LLaVA-CC3M-Pretrain-595K chat.json records.
CC3M_CHAT = DATA / "cc3m_chat_samples.json"
#: The one real LLaVA-Instruct-150K record (000000442786).
INSTRUCT = DATA / "instruct_samples.json"
#: COCO 2017 info + licences block + one image entry per licence id 1-6.
COCO = DATA / "coco_captions_train2017_excerpt.json"
#: The first 5 lines of the Conceptual Captions validation TSV.
GCC_TSV = DATA / "gcc_validation_head5.tsv"

ALL = (LCS_CHAT, CC3M_CHAT, INSTRUCT, COCO, GCC_TSV)


def load(path: Path) -> Any:
    """A fresh copy of a JSON sample, so tests may mutate what they get."""
    return json.loads(path.read_text(encoding="utf-8"))
