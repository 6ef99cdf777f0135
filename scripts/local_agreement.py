"""What the edge and fleet overhead scripts share: a suite run twice locally and once
another way, each cell's median in the three runs, the wall times and the verdict."""

from __future__ import annotations

import statistics


def print_agreement(
    runs: dict[str, dict[str, float]], walls: dict[str, float], other: str, short: str
) -> None:
    """Print each cell's median ms in ``local 1``, ``local 2`` and ``other`` (named
    ``short`` in ratios), the wall times with the cost per cell, and whether ``other``'s
    medians agree with the local ones within twice the local runs' spread."""
    cells = sorted(set(runs["local 1"]) & set(runs[other]) & set(runs["local 2"]))
    if not cells:
        raise SystemExit("no cell ran in all three runs")
    ratio = f"{short}/local"
    print(f"{'cell':<48} {'local 1':>9} {'local 2':>9} {other:>9} {ratio:>9}")
    noise, ratios = [], []
    for key in cells:
        one, two, them = runs["local 1"][key], runs["local 2"][key], runs[other][key]
        local = (one + two) / 2
        noise.append(abs(one - two) / local)
        ratios.append(them / local)
        print(f"{key:<48} {one:9.4f} {two:9.4f} {them:9.4f} {them / local:9.3f}")
    local_wall = (walls["local 1"] + walls["local 2"]) / 2
    per_cell = (walls[other] - local_wall) / len(cells)
    print(
        f"wall: local {walls['local 1']:.1f} s / {walls['local 2']:.1f} s, {other} "
        f"{walls[other]:.1f} s -> {per_cell:+.2f} s per cell ({len(cells)} cells)"
    )
    spread = statistics.median(noise)
    deviation = statistics.median(abs(r - 1) for r in ratios)
    verdict = "PASS" if deviation <= max(spread, 0.02) * 2 else "MISS"
    print(
        f"medians: {ratio} {statistics.median(ratios):.3f} (median |{ratio} - 1| "
        f"{deviation:.3f}); local vs local spread {spread:.3f} -> {verdict} "
        "(target: within twice the local spread, at least 2%)"
    )
