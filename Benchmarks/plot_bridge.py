#!/usr/bin/env python3
"""Plots joint 0's command for each mode of Sinew's mixed-rate bridge on the synthetic chunks, beside the raw
chunks and LeRobot-style sample-and-hold at 30 Hz, to a PNG (for the README).

Input: a CSV with the header `t,mode,joint0`, one row per sample:
  t       time, s, on the loop clock
  mode    `latest`, `temporal_ensemble`, `weighted_average`, `prefix_freeze`, `sample_and_hold_30hz`
          (the 500 Hz command of each), `reference` (the motion every chunk predicts, without their errors),
          or `chunk_<n>` (the steps of the n-th raw chunk, at their own times)
  joint0  position, rad
Swift's `BridgeComparison.csv(seed:)` (module SinewPolicy) writes it; `sinew bench policy --bridge-csv PATH`
saves it to a file.

Usage: plot_bridge.py CSV PNG [--from S] [--to S]   (default window: 3 to 5 s)
Needs matplotlib (e.g. python3 -m venv .build/plot-venv && .build/plot-venv/bin/pip install matplotlib).
"""

import argparse
import csv
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BRIDGE_MODES = ["latest", "temporal_ensemble", "weighted_average", "prefix_freeze"]
HOLD = "sample_and_hold_30hz"


def read(path, start, end):
    series = defaultdict(lambda: ([], []))
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"t", "mode", "joint0"} - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"{path}: no column {', '.join(sorted(missing))} (expected t,mode,joint0)")
        for row in reader:
            t = float(row["t"])
            if start <= t <= end:
                ts, ys = series[row["mode"]]
                ts.append(t)
                ys.append(float(row["joint0"]))
    return series


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv")
    parser.add_argument("png")
    parser.add_argument("--from", dest="start", type=float, default=3.0, help="window start, s")
    parser.add_argument("--to", dest="end", type=float, default=5.0, help="window end, s")
    args = parser.parse_args()
    series = read(args.csv, args.start, args.end)
    modes = [m for m in BRIDGE_MODES if m in series]
    if not modes:
        raise SystemExit(f"{args.csv}: no bridge mode between {args.start} and {args.end} s")

    fig, axes = plt.subplots(len(modes), 1, figsize=(10, 2.6 * len(modes)), sharex=True, squeeze=False)
    chunks = sorted((m for m in series if m.startswith("chunk_")), key=lambda m: int(m.split("_")[1]))
    for ax, mode in zip(axes[:, 0], modes):
        for i, name in enumerate(chunks):
            ts, ys = series[name]
            ax.plot(ts, ys, ".", color="0.7", markersize=2.5, label="raw chunks (steps)" if i == 0 else None)
        if "reference" in series:
            ax.plot(*series["reference"], "--", color="0.4", linewidth=0.8, label="reference")
        if HOLD in series:
            ax.plot(*series[HOLD], color="tab:red", linewidth=0.9, label="sample-and-hold 30 Hz (LeRobot)")
        ax.plot(*series[mode], color="tab:blue", linewidth=1.4, label=f"bridge: {mode}")
        ax.set_ylabel("joint 0 (rad)")
        ax.legend(loc="best", fontsize=7)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle("Sinew's mixed-rate bridge: 50-step chunks at 30 Hz, produced at 5-15 Hz, commanded at 500 Hz")
    fig.tight_layout()
    fig.savefig(args.png, dpi=130)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
