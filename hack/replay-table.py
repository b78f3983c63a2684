#!/usr/bin/env python3
"""Print a Markdown table of `tessera replay --json` results (docs/replay-*.json)."""
import glob
import json
import os
import sys

rows = []
for path in sorted(glob.glob(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "docs", "replay-*.json"))):
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        continue  # a run still writing its file
    b = d.get("baseline") or {}
    seeds = [s["seed"] for s in d["seeds"]]
    fgd = d.get("fgd_published_at_100")
    rows.append((d.get("variant", "?"), f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0]),
                 d["gpu_alloc_ratio_at_100"], b.get("gpu_alloc_ratio_at_100"), fgd, os.path.basename(path)))

print("| variant | seeds | tessera | baseline (same run) | tessera / baseline | FGD (published) | tessera - FGD | raw |")
print("|---|---|---|---|---|---|---|---|")
for v, seeds, t, b, fgd, path in rows:
    ratio = f"{t / b:.3f}" if b else "-"
    gap = f"{t - fgd:+.2f}" if fgd else "-"
    print(f"| {v} | {seeds} | {t:.2f} % | {b:.2f} % | {ratio} | {fgd} % | {gap} | `docs/{path}` |" if b else
          f"| {v} | {seeds} | {t:.2f} % | - | - | {fgd} % | {gap} | `docs/{path}` |")
