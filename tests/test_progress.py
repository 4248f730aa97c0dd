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


def test_a_url_bar_names_its_slowest_hosts_in_80_columns() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    totals = {"fast.example": 10, "slow.example": 10, "stuck.example": 10, "done.example": 2}
    with RichProgress(console) as progress:
        progress.start("urls cc3m", sum(totals.values()))
        progress.hosts(totals)
        for host, n in (("done.example", 2), ("fast.example", 9), ("slow.example", 4)):
            for _ in range(n):
                progress.host_advance(host)
                progress.advance()
        progress.host_advance("slow.example")
        progress.advance()
    final = out.getvalue().split("\x1b[2K")[-2:]  # the last redraw: the bar's and the hosts' line
    lines = [line for part in final for line in part.splitlines() if line.strip()]
    note = next(line for line in lines if line.startswith("slowest:"))
    assert note.split(": ", 1)[1].split(" · ") == [
        "stuck.example 0%",
        "slow.example 50%",
        "fast.example 90%",
    ]  # the finished host is not named
    assert all(len(line) <= 80 for line in lines), lines


def test_the_hosts_line_ends_with_the_bar() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    with RichProgress(console) as progress:
        progress.start("urls a", 1)
        progress.hosts({"a.example": 1})
        progress.finish()
        progress.start("images b", 1)
        progress.advance()
    assert "slowest:" not in out.getvalue().split("\x1b[2K")[-1]
