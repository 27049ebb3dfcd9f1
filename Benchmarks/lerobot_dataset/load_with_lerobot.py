"""Loads a dataset Sinew wrote with LeRobot's own LeRobotDataset and iterates every frame
(`make check-lerobot-dataset`): the metadata LeRobot reads (info, tasks, episodes, stats), every frame's features
against the parquet file read with pyarrow, each frame's task string, and its timestamp against frame_index / fps.
Exits 1 on the first disagreement.

    python load_with_lerobot.py DATASET_DIR
"""

import json
import sys

import numpy as np
import pyarrow.parquet as pq
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main():
    root = sys.argv[1]
    dataset = LeRobotDataset("sinew/check", root=root)
    meta = dataset.meta
    with open(f"{root}/meta/info.json") as f:
        info = json.load(f)
    table = pq.read_table(f"{root}/data/chunk-000/file-000.parquet")
    features = [name for name, ft in info["features"].items() if len(ft["shape"]) == 1 and ft["shape"][0] > 1]
    problems = []
    if len(dataset) != info["total_frames"] or dataset.num_episodes != info["total_episodes"]:
        problems.append(f"LeRobot sees {len(dataset)} frames and {dataset.num_episodes} episodes, "
                        f"info.json says {info['total_frames']} and {info['total_episodes']}")
    columns = {name: np.asarray(table.column(name).to_pylist(), dtype=np.float32) for name in features}
    tasks = list(meta.tasks.index)
    for i in range(len(dataset)):
        item = dataset[i]
        for name in features:
            if not np.array_equal(item[name].numpy(), columns[name][i]):
                problems.append(f"frame {i}: {name} is {item[name].numpy()}, the parquet file has {columns[name][i]}")
        expected = float(np.float32(int(item["frame_index"]) / meta.fps))
        if abs(float(item["timestamp"]) - expected) > 1e-6:
            problems.append(f"frame {i}: timestamp {float(item['timestamp'])}, frame_index / fps is {expected}")
        if item["task"] != tasks[int(item["task_index"])]:
            problems.append(f"frame {i}: task {item['task']!r}")
        if len(problems) > 10:
            break
    stats = {name: {k: np.asarray(v).tolist() for k, v in s.items()} for name, s in meta.stats.items()
             if name in features}
    for problem in problems:
        print(problem)
    print(json.dumps({
        "lerobot_dataset": root, "frames": len(dataset), "episodes": dataset.num_episodes, "fps": meta.fps,
        "tasks": tasks, "features": sorted(dataset.features), "robot_type": meta.robot_type,
        "action_mean": stats.get("action", {}).get("mean"), "frames_iterated": i + 1, "problems": len(problems),
    }))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
