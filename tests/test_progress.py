"""Progress bars: each count shows its unit, and a bar stays one readable line at 80 columns."""

from __future__ import annotations

import io

from rich.console import Console

from audit.output.render.progress import RichProgress


def _bars(*tasks: tuple[str, int, int]) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    with RichProgress(console) as progress:
        for label, total, done in tasks:
            progress.start(label, total)
            progress.advance(done)
    final = out.getvalue().split("\x1b[2K")[-1]  # the last redraw of the live display
    return [line for line in final.splitlines() if line.strip() and "\x1b[?25h" not in line]


def test_counts_show_their_unit_and_each_bar_fits_80_columns() -> None:
    lines = _bars(
        ("structure", 1_029_887_963, 512 << 20),
        ("urls [bold]a-very-long-dataset-name[[datasets]]", 3_000_000, 1_234_567),
        ("images (12,345 cached)", 595_375, 100),
        ("licences blip_laion_cc_sbu_558k.json", 95_375, 12_345),
    )
    assert len(lines) == 4
    assert all(len(line) <= 80 for line in lines), lines
    assert "982/982 MB" in lines[0]
    assert "3.0M/3.0M URLs" in lines[1]
    assert lines[1].startswith("urls [bold]")  # a label is text, cut with an ellipsis
    assert "/595k images" in lines[2]
    assert "/95,375 records" in lines[3]
