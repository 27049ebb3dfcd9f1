"""Checks a directory against the LeRobotDataset v3.0 layout, written from the published format (LeRobot's
lerobot/datasets/utils.py, dataset_metadata.py, compute_stats.py and feature_utils.py at v3.0), independently
of the writer: every file and column where the format puts it, with the types LeRobot reads, every index
consistent, timestamps equal to frame_index / fps, and the statistics equal to those recomputed from the data.

Returns a list of problems (empty: the directory is a valid v3.0 dataset).
"""

import json
import math
import os
import string

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REQUIRED_INFO = {
    "codebase_version": str, "fps": int, "features": dict, "total_episodes": int, "total_frames": int,
    "total_tasks": int, "chunks_size": int, "data_files_size_in_mb": int, "video_files_size_in_mb": int,
    "data_path": str, "splits": dict,
}
DEFAULT_FEATURES = {
    "timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64", "task_index": "int64",
}
EPISODE_COLUMNS = {
    "episode_index": pa.int64(), "length": pa.int64(), "data/chunk_index": pa.int64(), "data/file_index": pa.int64(),
    "dataset_from_index": pa.int64(), "dataset_to_index": pa.int64(), "meta/episodes/chunk_index": pa.int64(),
    "meta/episodes/file_index": pa.int64(),
}
ARROW_TYPES = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "int32": pa.int32(),
               "bool": pa.bool_(), "string": pa.string()}
# LeRobot's tolerance on timestamps (LeRobotDataset's tolerance_s default).
TOLERANCE_S = 1e-4


def template_fields(template):
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def stats_close(expected, found, what, problems, relative=1e-5):
    expected = np.asarray(expected, dtype=np.float64).reshape(-1)
    found = np.asarray(found, dtype=np.float64).reshape(-1)
    if expected.shape != found.shape:
        problems.append(f"{what}: {found.size} values, expected {expected.size}")
        return
    scale = np.maximum(1.0, np.abs(expected))
    if not np.all(np.abs(expected - found) <= relative * scale):
        problems.append(f"{what}: {found.tolist()} but the data give {expected.tolist()}")


def recomputed(values):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    stats = {"min": array.min(axis=0), "max": array.max(axis=0), "mean": array.mean(axis=0),
             "std": array.std(axis=0), "count": [array.shape[0]]}
    return stats


def check(root):
    problems = []
    meta = os.path.join(root, "meta")
    info_path = os.path.join(meta, "info.json")
    if not os.path.isfile(info_path):
        return [f"{info_path}: missing"]
    with open(info_path) as f:
        info = json.load(f)
    for key, kind in REQUIRED_INFO.items():
        if key not in info:
            problems.append(f"meta/info.json: no '{key}'")
        elif not isinstance(info[key], kind) or (kind is int and isinstance(info[key], bool)):
            problems.append(f"meta/info.json: '{key}' is {type(info[key]).__name__}, expected {kind.__name__}")
    if problems:
        return problems
    if info["codebase_version"] != "v3.0":
        problems.append(f"meta/info.json: codebase_version {info['codebase_version']!r}, expected 'v3.0'")
    if info["fps"] <= 0:
        problems.append("meta/info.json: fps must be positive")
    if template_fields(info["data_path"]) != {"chunk_index", "file_index"}:
        problems.append(f"meta/info.json: data_path {info['data_path']!r} must use {{chunk_index}} and {{file_index}}")
    features = info["features"]
    for name, dtype in DEFAULT_FEATURES.items():
        feature = features.get(name)
        if feature is None:
            problems.append(f"meta/info.json: feature '{name}' missing")
        elif feature.get("dtype") != dtype or list(feature.get("shape", [])) != [1]:
            problems.append(f"meta/info.json: feature '{name}' must be {dtype} of shape [1], is {feature}")
    for name, feature in features.items():
        if not {"dtype", "shape"} <= set(feature):
            problems.append(f"meta/info.json: feature '{name}' needs dtype and shape")
            continue
        names = feature.get("names")
        if isinstance(names, list) and len(feature["shape"]) == 1 and len(names) != feature["shape"][0]:
            problems.append(f"meta/info.json: feature '{name}' has {len(names)} names for shape {feature['shape']}")
    if problems:
        return problems

    # Tasks: task_index 0…T-1, indexed by the task string as pandas writes it.
    tasks_path = os.path.join(meta, "tasks.parquet")
    if not os.path.isfile(tasks_path):
        return problems + ["meta/tasks.parquet: missing"]
    tasks_table = pq.read_table(tasks_path)
    pandas_meta = json.loads((tasks_table.schema.metadata or {}).get(b"pandas", b"{}"))
    if pandas_meta.get("index_columns") != ["task"]:
        problems.append("meta/tasks.parquet: the pandas index must be the column 'task' (LeRobot reads it with pandas)")
    if "task" not in tasks_table.column_names or "task_index" not in tasks_table.column_names:
        return problems + ["meta/tasks.parquet: needs columns 'task' and 'task_index'"]
    tasks = tasks_table.column("task").to_pylist()
    task_indices = tasks_table.column("task_index").to_pylist()
    if sorted(task_indices) != list(range(len(tasks))) or len(set(tasks)) != len(tasks):
        problems.append("meta/tasks.parquet: task_index must be 0…T-1 and each task string unique")
    if len(tasks) != info["total_tasks"]:
        problems.append(f"meta/info.json: total_tasks {info['total_tasks']}, tasks.parquet has {len(tasks)}")
    task_of = dict(zip(task_indices, tasks))

    # Episodes.
    episode_dir = os.path.join(meta, "episodes")
    episode_files = sorted(
        os.path.join(dirpath, name) for dirpath, _, names in os.walk(episode_dir) for name in names
        if name.endswith(".parquet"))
    if not episode_files:
        return problems + ["meta/episodes: no parquet file"]
    for path in episode_files:
        relative = os.path.relpath(path, root)
        parts = relative.split(os.sep)
        if len(parts) != 4 or not parts[2].startswith("chunk-") or not parts[3].startswith("file-"):
            problems.append(f"{relative}: expected meta/episodes/chunk-NNN/file-NNN.parquet")
    episodes = pa.concat_tables([pq.read_table(p) for p in episode_files]).to_pylist()
    episodes_schema = pq.read_table(episode_files[0]).schema
    for name, kind in EPISODE_COLUMNS.items():
        if name not in episodes_schema.names:
            problems.append(f"meta/episodes: column '{name}' missing")
        elif episodes_schema.field(name).type != kind:
            problems.append(f"meta/episodes: column '{name}' is {episodes_schema.field(name).type}, expected {kind}")
    if "tasks" not in episodes_schema.names:
        problems.append("meta/episodes: column 'tasks' missing")
    if problems:
        return problems
    if [e["episode_index"] for e in episodes] != list(range(len(episodes))):
        problems.append("meta/episodes: episode_index must run 0…N-1 in order")
    if len(episodes) != info["total_episodes"]:
        problems.append(f"meta/info.json: total_episodes {info['total_episodes']}, meta/episodes has {len(episodes)}")
    expected_from = 0
    for e in episodes:
        if e["dataset_from_index"] != expected_from or e["dataset_to_index"] - e["dataset_from_index"] != e["length"]:
            problems.append(f"meta/episodes: episode {e['episode_index']}'s frame range does not follow the last one")
        expected_from = e["dataset_to_index"]
        if any(t not in tasks for t in e["tasks"]):
            problems.append(f"meta/episodes: episode {e['episode_index']} names a task not in tasks.parquet")
    if expected_from != info["total_frames"]:
        problems.append(f"meta/info.json: total_frames {info['total_frames']}, the episodes hold {expected_from}")
    if info["splits"].get("train") != f"0:{len(episodes)}":
        problems.append(f"meta/info.json: splits.train should be '0:{len(episodes)}'")

    # Data files, as the episodes point at them.
    files = sorted({(e["data/chunk_index"], e["data/file_index"]) for e in episodes})
    tables = []
    for chunk, file in files:
        path = os.path.join(root, info["data_path"].format(chunk_index=chunk, file_index=file))
        if not os.path.isfile(path):
            problems.append(f"{os.path.relpath(path, root)}: missing")
            continue
        tables.append(pq.read_table(path))
    if problems:
        return problems
    table = pa.concat_tables(tables)
    stored = [n for n, f in features.items() if f["dtype"] not in ("video", "image")]
    for name in stored:
        feature = features[name]
        if name not in table.column_names:
            problems.append(f"data: column '{name}' missing")
            continue
        kind = table.schema.field(name).type
        base = ARROW_TYPES.get(feature["dtype"])
        if list(feature["shape"]) == [1]:
            if kind != base:
                problems.append(f"data: column '{name}' is {kind}, expected {base}")
        elif not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind)) or kind.value_type != base:
            problems.append(f"data: column '{name}' is {kind}, expected a list of {base}")
        elif pa.types.is_fixed_size_list(kind) and kind.list_size != feature["shape"][0]:
            problems.append(f"data: column '{name}' holds {kind.list_size} values, shape is {feature['shape']}")
    extra = set(table.column_names) - set(stored)
    if extra:
        problems.append(f"data: columns not in info.json's features: {sorted(extra)}")
    if problems:
        return problems
    if table.num_rows != info["total_frames"]:
        problems.append(f"data: {table.num_rows} rows, total_frames is {info['total_frames']}")
    values = {}
    for name in stored:
        column = table.column(name).combine_chunks()
        if list(features[name]["shape"]) == [1]:
            values[name] = column.to_numpy()
        else:
            values[name] = np.asarray(column.flatten().to_numpy()).reshape(-1, features[name]["shape"][0])
    fps = info["fps"]
    index = values["index"]
    if not np.array_equal(index, np.arange(table.num_rows)):
        problems.append("data: 'index' must run 0…total_frames-1 in order")
    for e in episodes:
        rows = slice(e["dataset_from_index"], e["dataset_to_index"])
        frame_index = values["frame_index"][rows]
        if not np.array_equal(frame_index, np.arange(e["length"])):
            problems.append(f"data: episode {e['episode_index']}'s frame_index must run 0…length-1")
        if not np.all(values["episode_index"][rows] == e["episode_index"]):
            problems.append(f"data: episode {e['episode_index']}'s rows carry another episode_index")
        timestamps = values["timestamp"][rows].astype(np.float64)
        worst = np.max(np.abs(timestamps - frame_index / fps)) if e["length"] else 0.0
        if worst > TOLERANCE_S:
            problems.append(f"data: episode {e['episode_index']}: timestamp differs from frame_index / fps by {worst} s")
        for t in set(values["task_index"][rows].tolist()):
            if task_of.get(t) not in e["tasks"]:
                problems.append(f"data: episode {e['episode_index']} has task_index {t}, not one of its tasks")
        for name in stored:
            for key, expected in recomputed(values[name][rows]).items():
                column = f"stats/{name}/{key}"
                if column not in e:
                    problems.append(f"meta/episodes: column '{column}' missing")
                    continue
                stats_close(expected, e[column], f"meta/episodes: episode {e['episode_index']} {column}", problems)
        if len(problems) > 20:
            return problems

    # Statistics over the whole dataset.
    stats_path = os.path.join(meta, "stats.json")
    if not os.path.isfile(stats_path):
        return problems + ["meta/stats.json: missing"]
    with open(stats_path) as f:
        stats = json.load(f)
    for name in stored:
        if name not in stats:
            problems.append(f"meta/stats.json: no statistics for '{name}'")
            continue
        for key, expected in recomputed(values[name]).items():
            if key not in stats[name]:
                problems.append(f"meta/stats.json: {name} has no '{key}'")
                continue
            stats_close(expected, stats[name][key], f"meta/stats.json: {name}.{key}", problems)
        for key in ("q01", "q10", "q50", "q90", "q99"):
            if key in stats[name]:
                low, high = np.asarray(stats[name]["min"]), np.asarray(stats[name]["max"])
                q = np.asarray(stats[name][key])
                if np.any(q < low - 1e-6) or np.any(q > high + 1e-6):
                    problems.append(f"meta/stats.json: {name}.{key} lies outside [min, max]")
        for key, value in stats[name].items():
            if any(not math.isfinite(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)):
                problems.append(f"meta/stats.json: {name}.{key} is not finite")
    return problems
