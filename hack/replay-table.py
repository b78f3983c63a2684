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
    rows.append((path, d))

print("| variant | seeds | tessera | baseline (same run) | tessera / baseline | FGD, same seeds (artifact) | tessera - FGD, seed by seed | seeds ahead | FGD (published) | raw |")
print("|---|---|---|---|---|---|---|---|---|---|")
for path, d in rows:
    seeds = [s["seed"] for s in d["seeds"]]
    t = d["gpu_alloc_ratio_at_100"]
    b = (d.get("baseline") or {}).get("gpu_alloc_ratio_at_100")
    fgd = d.get("fgd_artifact_per_seed")
    cells = [d.get("variant", "?"), f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0]), f"{t:.2f} %"]
    cells += [f"{b:.2f} %", f"{t / b:.3f}"] if b else ["-", "-"]
    if fgd:
        ahead = sum(1 for a, f in zip(d["per_seed"], fgd) if a > f)
        cells += [f"{sum(fgd) / len(fgd):.2f} %", f"{d['paired_diff_vs_fgd']:+.2f}", f"{ahead} of {len(fgd)}"]
    else:
        cells += ["-", "-", "-"]
    pub = d.get("fgd_published_at_100")
    cells += [f"{pub} %" if pub else "-", f"`docs/{os.path.basename(path)}`"]
    print("| " + " | ".join(cells) + " |")
