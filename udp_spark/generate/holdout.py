"""Late arrivals: hold some source rows back, then release them as a new batch.

Used to measure what an incremental run does to customer ids: run the pipeline on the
data without the held-out rows, release them (a new file in the source's folder, as a
nightly export would land), run again and compare. Only line-per-record files are split
(JSON lines and the subscribers CSV, which has no quoted line breaks), so every held-out
line is a whole record.
"""

from __future__ import annotations

import random
from pathlib import Path

# (folder, file pattern, late file name, has a header line)
SPLITTABLE = (
    ("webshop", "customers*.jsonl", "customers_late.jsonl", False),
    ("app", "users*.jsonl", "users_late.jsonl", False),
    ("email", "subscribers*.csv", "subscribers_late.csv", True),
)
HELD_DIR = "_held_out"


def hold_out(data_dir: Path, fraction: float, seed: int = 7) -> int:
    """Move ``fraction`` of the rows of the splittable sources into ``_held_out/``.

    Returns:
        The number of rows held out.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    held = 0
    for folder, pattern, late_name, has_header in SPLITTABLE:
        for path in sorted((data_dir / folder).glob(pattern)):
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            header, body = (lines[:1], lines[1:]) if has_header else ([], lines)
            late = set(rng.sample(range(len(body)), round(len(body) * fraction)))
            if not late:
                continue
            target = data_dir / HELD_DIR / folder / late_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(header + [body[i] for i in sorted(late)]),
                              encoding="utf-8")
            path.write_text("".join(header + [ln for i, ln in enumerate(body)
                                              if i not in late]), encoding="utf-8")
            held += len(late)
    return held


def release(data_dir: Path) -> list[Path]:
    """Move the held-out files into their source folders; returns the files that landed."""
    landed = []
    base = data_dir / HELD_DIR
    for path in sorted(base.glob("*/*")):
        target = data_dir / path.parent.name / path.name
        path.replace(target)
        landed.append(target)
    return landed
