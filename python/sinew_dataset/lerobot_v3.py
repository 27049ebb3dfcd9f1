"""Writes and reads LeRobotDataset v3.0 directories with pyarrow alone (no LeRobot, no pandas, no torch).

The layout, from LeRobot's published format (lerobot/datasets/utils.py and dataset_metadata.py, v3.0):

    meta/info.json                              codebase_version "v3.0", fps, features, totals, path templates
    meta/stats.json                             per feature: min, max, mean, std, count, q01 q10 q50 q90 q99
    meta/tasks.parquet                          task_index (int64), indexed by the task string (pandas index "task")
    meta/episodes/chunk-000/file-000.parquet    one row per episode: episode_index, tasks, length, where its
                                                frames are (data/chunk_index, data/file_index, dataset_from_index,
                                                dataset_to_index), meta/episodes/*, and stats/<feature>/<stat>
    data/chunk-000/file-000.parquet             one row per frame: the features, then timestamp (float32),
                                                frame_index, episode_index, index, task_index (int64)

A vector feature of shape (n,) is a fixed-size list of n float32; a feature of shape (1,) is a scalar column
(LeRobot's get_hf_features_from_features). timestamp = frame_index / fps. Statistics use the population standard
deviation; quantiles here are exact (numpy's linear interpolation), where LeRobot's own writer approximates them
with histograms.
"""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = [0.01, 0.10, 0.50, 0.90, 0.99]
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
STAT_KEYS = ["min", "max", "mean", "std", "count"] + ["q%02d" % int(q * 100) for q in QUANTILES]


def feature_stats(values):
    """LeRobot's statistics of one feature over frames (rows): per component, as lists."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    stats = {
        "min": array.min(axis=0),
        "max": array.max(axis=0),
        "mean": array.mean(axis=0),
        "std": array.std(axis=0),
        "count": np.array([array.shape[0]], dtype=np.int64),
    }
    for q in QUANTILES:
        stats["q%02d" % int(q * 100)] = np.quantile(array, q, axis=0)
    return stats


def _arrow_column(values, feature):
    dtype = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64()}[feature["dtype"]]
    if list(feature["shape"]) == [1]:
        return pa.array(np.asarray(values).reshape(-1), type=dtype)
    flat = pa.array(np.asarray(values).reshape(-1), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, feature["shape"][0])


def _tasks_table(tasks):
    """tasks.parquet as pandas writes a frame indexed by "task": LeRobot reads it with pandas.read_parquet."""
    table = pa.table(
        {"task_index": pa.array(range(len(tasks)), type=pa.int64()), "task": pa.array(tasks, type=pa.string())}
    )
    pandas_metadata = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_metadata).encode()})


def write_dataset(root, fps, robot_type, features, episodes, extra_meta=None):
    """Writes a v3.0 dataset into the new directory `root`.

    features: name -> {"dtype": "float32", "shape": [n], "names": [...]}, the dataset's own features.
    episodes: list of {"task": str, <feature name>: list of frames (each a list of n numbers)}.
    extra_meta: written to meta/sinew.json (units and where the data came from).
    """
    if os.path.exists(root) and os.listdir(root):
        raise FileExistsError(f"{root} exists and is not empty: give a new directory")
    all_features = dict(features)
    all_features.update(DEFAULT_FEATURES)
    tasks = []
    for episode in episodes:
        if episode["task"] not in tasks:
            tasks.append(episode["task"])
    columns = {name: [] for name in all_features}
    episode_rows = []
    index = 0
    for episode_index, episode in enumerate(episodes):
        length = len(episode[next(iter(features))])
        if length == 0:
            raise ValueError(f"episode {episode_index} has no frames")
        for name in features:
            if len(episode[name]) != length:
                raise ValueError(f"episode {episode_index}: {name} has {len(episode[name])} frames, not {length}")
        frame_index = np.arange(length, dtype=np.int64)
        own = {name: np.asarray(episode[name], dtype=np.float32) for name in features}
        own["timestamp"] = (frame_index / fps).astype(np.float32)
        own["frame_index"] = frame_index
        own["episode_index"] = np.full(length, episode_index, dtype=np.int64)
        own["index"] = np.arange(index, index + length, dtype=np.int64)
        own["task_index"] = np.full(length, tasks.index(episode["task"]), dtype=np.int64)
        for name in all_features:
            columns[name].append(own[name])
        row = {
            "episode_index": episode_index,
            "tasks": [episode["task"]],
            "length": length,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": index,
            "dataset_to_index": index + length,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
        }
        for name in all_features:
            for key, value in feature_stats(own[name]).items():
                row[f"stats/{name}/{key}"] = value.tolist()
        episode_rows.append(row)
        index += length

    os.makedirs(os.path.join(root, "meta"), exist_ok=True)
    data = {name: np.concatenate(columns[name]) for name in all_features}
    table = pa.table({name: _arrow_column(data[name], all_features[name]) for name in all_features})
    data_path = os.path.join(root, DATA_PATH.format(chunk_index=0, file_index=0))
    os.makedirs(os.path.dirname(data_path), exist_ok=True)
    pq.write_table(table, data_path)

    episodes_table = pa.Table.from_pylist(episode_rows)
    episodes_path = os.path.join(root, EPISODES_PATH.format(chunk_index=0, file_index=0))
    os.makedirs(os.path.dirname(episodes_path), exist_ok=True)
    pq.write_table(episodes_table, episodes_path)
    pq.write_table(_tasks_table(tasks), os.path.join(root, "meta", "tasks.parquet"))

    stats = {name: {key: value.tolist() for key, value in feature_stats(data[name]).items()} for name in all_features}
    with open(os.path.join(root, "meta", "stats.json"), "w") as f:
        json.dump(stats, f, indent=4)
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(episodes),
        "total_frames": index,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": all_features,
    }
    with open(os.path.join(root, "meta", "info.json"), "w") as f:
        json.dump(info, f, indent=4)
    if extra_meta is not None:
        with open(os.path.join(root, "meta", "sinew.json"), "w") as f:
            json.dump(extra_meta, f, indent=4)
    return info


def read_dataset(root):
    """The dataset's frames by feature (numpy arrays over all frames), its info and its tasks."""
    with open(os.path.join(root, "meta", "info.json")) as f:
        info = json.load(f)
    episodes = pq.read_table(os.path.join(root, EPISODES_PATH.format(chunk_index=0, file_index=0)))
    files = sorted(
        {(c, i) for c, i in zip(episodes.column("data/chunk_index").to_pylist(),
                                 episodes.column("data/file_index").to_pylist())}
    )
    tables = [pq.read_table(os.path.join(root, info["data_path"].format(chunk_index=c, file_index=i)))
              for c, i in files]
    table = pa.concat_tables(tables)
    frames = {}
    for name, feature in info["features"].items():
        column = table.column(name).combine_chunks()
        if list(feature["shape"]) == [1]:
            frames[name] = column.to_numpy()
        else:
            frames[name] = np.asarray(column.flatten().to_numpy()).reshape(-1, feature["shape"][0])
    tasks = pq.read_table(os.path.join(root, "meta", "tasks.parquet"))
    return info, frames, tasks.column("task").to_pylist(), episodes
