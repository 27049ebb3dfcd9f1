"""The v3.0 checker against broken datasets (run by Tests/SinewTwinTests/LeRobotDatasetTests.swift):

    python dataset_check.py VALID_DATASET_DIR SCRATCH_DIR

The valid directory must pass; each copy broken in one way (a timestamp off, a column of the wrong type, a wrong
mean, an episode range that skips frames, tasks without their pandas index, an old codebase version, a missing
data file, a total that disagrees) must be reported. Prints one JSON object: {"valid": [...problems...],
"broken": {name: [...problems...]}}.
"""

import json
import os
import shutil
import sys

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from sinew_dataset import check  # noqa: E402

DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def edit_json(path, change):
    with open(path) as f:
        value = json.load(f)
    change(value)
    with open(path, "w") as f:
        json.dump(value, f)


def edit_table(path, change):
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def replace_column(table, name, array):
    return table.set_column(table.column_names.index(name), name, array)


def shifted_timestamp(root):
    def change(table):
        values = table.column("timestamp").to_pylist()
        values[3] += 0.01
        return replace_column(table, "timestamp", pa.array(values, type=pa.float32()))
    edit_table(os.path.join(root, DATA), change)


def float64_state(root):
    def change(table):
        column = table.column("observation.state").combine_chunks()
        values = pa.array(column.flatten().to_numpy().astype("float64"))
        return replace_column(table, "observation.state", pa.FixedSizeListArray.from_arrays(values, column.type.list_size))
    edit_table(os.path.join(root, DATA), change)


def wrong_mean(root):
    edit_json(os.path.join(root, "meta/stats.json"), lambda s: s["action"]["mean"].__setitem__(0, 123.0))


def skipped_frames(root):
    def change(table):
        values = table.column("dataset_from_index").to_pylist()
        values[1] += 1
        return replace_column(table, "dataset_from_index", pa.array(values, type=pa.int64()))
    edit_table(os.path.join(root, EPISODES), change)


def tasks_without_index(root):
    edit_table(os.path.join(root, "meta/tasks.parquet"), lambda t: t.replace_schema_metadata({}))


def old_version(root):
    edit_json(os.path.join(root, "meta/info.json"), lambda i: i.__setitem__("codebase_version", "v2.1"))


def missing_data(root):
    os.remove(os.path.join(root, DATA))


def wrong_total(root):
    edit_json(os.path.join(root, "meta/info.json"), lambda i: i.__setitem__("total_frames", i["total_frames"] + 1))


def wrong_frame_index(root):
    def change(table):
        values = table.column("frame_index").to_pylist()
        values[5] = 0
        return replace_column(table, "frame_index", pa.array(values, type=pa.int64()))
    edit_table(os.path.join(root, DATA), change)


def main():
    valid, scratch = sys.argv[1], sys.argv[2]
    out = {"valid": check.check(valid), "broken": {}}
    for breaking in (shifted_timestamp, float64_state, wrong_mean, skipped_frames, tasks_without_index, old_version,
                     missing_data, wrong_total, wrong_frame_index):
        root = os.path.join(scratch, breaking.__name__)
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(valid, root)
        breaking(root)
        out["broken"][breaking.__name__] = check.check(root)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
