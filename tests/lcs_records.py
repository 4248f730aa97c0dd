"""Clean LCS-558K-shaped records for tests that need a valid file to start from (or to break).

The text is a real LCS-558K sample's (record 004539375); tests mutate copies, never these.
"""

from __future__ import annotations

from typing import Any

#: One valid LCS-558K chat record.
LCS_RECORD: dict[str, Any] = {
    "id": "004539375",
    "image": "00453/004539375.jpg",
    "conversations": [
        {"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"},
        {
            "from": "gpt",
            "value": "select luxury furniture 3 - inch gel memory foam mattress topper",
        },
    ],
}


def lcs_records(n: int) -> list[dict[str, Any]]:
    """``n`` distinct clean LCS-558K chat records (ids 004539370, 004539371, ...)."""
    return [
        {
            "id": f"00453937{i}",
            "image": f"00453/00453937{i}.jpg",
            "conversations": [
                {"from": "human", "value": "What is this?\n<image>"},
                {"from": "gpt", "value": f"a photo {i}"},
            ],
        }
        for i in range(n)
    ]
