"""Clean CC-3M-chat-shaped records for tests that build (and then break) a chat file."""

from __future__ import annotations

from typing import Any


def cc3m_records(n: int) -> list[dict[str, Any]]:
    """``n`` distinct clean CC-3M chat records (GCC_train_000000000, ...), a Table 11 prompt each."""
    return [
        {
            "id": f"GCC_train_{i:09d}",
            "image": f"GCC_train_{i:09d}.jpg",
            "conversations": [
                {
                    "from": "human",
                    "value": "Provide a brief description of the given image.\n<image>",
                },
                {"from": "gpt", "value": f"a photo of thing number {i} ."},
            ],
        }
        for i in range(n)
    ]
