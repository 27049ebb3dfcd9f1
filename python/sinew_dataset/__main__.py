"""python -m sinew_dataset write|check|dump — the helper the `sinew` command calls to write parquet."""

import argparse
import json
import sys

import numpy as np

from . import check as checker
from . import lerobot_v3


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m sinew_dataset", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write a v3.0 dataset from episodes in JSON (what sinew hands over)")
    write.add_argument("--input", required=True, help="the episodes: JSON written by sinew ('-' for stdin)")
    write.add_argument("--output", required=True, help="the dataset directory (new, or empty)")
    verify = commands.add_parser("check", help="check a directory against the v3.0 layout; exit 1 on a problem")
    verify.add_argument("root")
    dump = commands.add_parser("dump", help="print the dataset's frames and metadata as one JSON object")
    dump.add_argument("root")
    args = parser.parse_args(argv)

    if args.command == "write":
        source = sys.stdin if args.input == "-" else open(args.input)
        with source:
            spec = json.load(source)
        info = lerobot_v3.write_dataset(
            args.output, spec["fps"], spec.get("robot_type"), spec["features"], spec["episodes"], spec.get("sinew"))
        problems = checker.check(args.output)
        if problems:
            print("the dataset written does not pass the v3.0 check:", file=sys.stderr)
            for problem in problems:
                print("  " + problem, file=sys.stderr)
            return 1
        print(json.dumps({"dataset": args.output, "episodes": info["total_episodes"], "frames": info["total_frames"],
                          "tasks": info["total_tasks"], "fps": info["fps"]}))
        return 0
    if args.command == "check":
        problems = checker.check(args.root)
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{args.root}: a valid LeRobotDataset v3.0 directory")
        return 1 if problems else 0
    info, frames, tasks, episodes = lerobot_v3.read_dataset(args.root)
    with open(f"{args.root}/meta/stats.json") as f:
        stats = json.load(f)
    out = {"info": info, "tasks": tasks, "stats": stats,
           "episodes": episodes.select(["episode_index", "length", "tasks"]).to_pylist(),
           "frames": {name: np.asarray(values).tolist() for name, values in frames.items()}}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
