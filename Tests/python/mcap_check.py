#!/usr/bin/env python3
"""Cross-check Sinew's MCAP files with the official MCAP libraries for Python (PyPI `mcap`, `mcap-ros2-support`).

  mcap_check.py FILE EXPECTED.json

Reads FILE three times and compares it with what Sinew wrote, listed in EXPECTED.json:
  1. mcap's seeking reader (summary, chunk indexes, chunk CRCs checked: validate_crcs=True): every message in file
     order (topic, log and publish time, sequence, data), the statistics, attachments and metadata;
  2. mcap's non-seeking reader (every record in order; chunk CRCs and the data section CRC checked);
  3. the messages of the "cdr" channels decoded by mcap-ros2-support as sensor_msgs/msg/JointState.

EXPECTED.json: {"messages": [{"topic", "log_time", "publish_time", "sequence", "data" (hex)}],
"joint_states": [{"topic", "sec", "nanosec", "frame_id", "name", "position", "velocity", "effort"}],
"attachments": [{"name", "media_type", "log_time", "create_time", "data" (hex)}],
"metadata": [{"name", "metadata"}], "profile", "library"}.

Prints one line per mismatch (at most 20 of a kind) and a closing count; exit 0 when everything matches.
"""
import io
import json
import sys

from mcap.reader import NonSeekingReader, SeekingReader
from mcap_ros2.decoder import DecoderFactory

problems = []


def problem(text):
    problems.append(text)
    if len(problems) <= 60:
        print("MISMATCH " + text)


def message_rows(iterator):
    return [
        {
            "topic": channel.topic,
            "log_time": message.log_time,
            "publish_time": message.publish_time,
            "sequence": message.sequence,
            "data": bytes(message.data).hex(),
        }
        for _, channel, message in iterator
    ]


def compare_messages(source, rows, expected):
    if len(rows) != len(expected):
        problem(f"{source}: {len(rows)} messages, expected {len(expected)}")
    shown = 0
    for index, (row, want) in enumerate(zip(rows, expected)):
        if row != want and shown < 20:
            problem(f"{source}: message {index} is {row}, expected {want}")
            shown += 1


def main():
    path, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    want_messages = expected["messages"]
    want_counts = {}
    for row in want_messages:
        want_counts[row["topic"]] = want_counts.get(row["topic"], 0) + 1

    # 1. Through the summary and the chunk indexes.
    with open(path, "rb") as f:
        reader = SeekingReader(f, validate_crcs=True)
        header = reader.get_header()
        if header.profile != expected["profile"] or header.library != expected["library"]:
            problem(f"header is ({header.profile!r}, {header.library!r})")
        summary = reader.get_summary()
        if summary is None or summary.statistics is None:
            problem("no summary or no statistics")
        else:
            stats = summary.statistics
            if stats.message_count != len(want_messages):
                problem(f"statistics: message_count {stats.message_count}, expected {len(want_messages)}")
            counts = {summary.channels[cid].topic: n for cid, n in stats.channel_message_counts.items()}
            if counts != want_counts:
                problem(f"statistics: channel_message_counts {counts}, expected {want_counts}")
            if stats.chunk_count != len(summary.chunk_indexes) or stats.chunk_count == 0:
                problem(f"statistics: chunk_count {stats.chunk_count}, {len(summary.chunk_indexes)} chunk indexes")
            times = [row["log_time"] for row in want_messages]
            if times and (stats.message_start_time, stats.message_end_time) != (min(times), max(times)):
                problem("statistics: message start/end times")
        compare_messages("seeking reader", message_rows(reader.iter_messages(log_time_order=False)), want_messages)
        attachments = [
            {
                "name": a.name,
                "media_type": a.media_type,
                "log_time": a.log_time,
                "create_time": a.create_time,
                "data": bytes(a.data).hex(),
            }
            for a in reader.iter_attachments()
        ]
        if attachments != expected["attachments"]:
            problem(f"attachments {attachments}, expected {expected['attachments']}")
        metadata = [{"name": m.name, "metadata": dict(m.metadata)} for m in reader.iter_metadata()]
        if metadata != expected["metadata"]:
            problem(f"metadata {metadata}, expected {expected['metadata']}")

    # 2. Every record in order, the data section CRC checked at DataEnd.
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read())
    reader = NonSeekingReader(stream, validate_crcs=True)
    compare_messages("non-seeking reader", message_rows(reader.iter_messages(log_time_order=False)), want_messages)

    # 3. The ROS 2 JointState messages decoded by mcap-ros2-support.
    want_states = expected["joint_states"]
    with open(path, "rb") as f:
        reader = SeekingReader(f, validate_crcs=True, decoder_factories=[DecoderFactory()])
        topics = sorted({row["topic"] for row in want_states})
        states = []
        for _, channel, _, decoded in reader.iter_decoded_messages(topics=topics or None, log_time_order=False):
            if channel.message_encoding != "cdr":
                continue
            states.append(
                {
                    "topic": channel.topic,
                    "sec": decoded.header.stamp.sec,
                    "nanosec": decoded.header.stamp.nanosec,
                    "frame_id": decoded.header.frame_id,
                    "name": list(decoded.name),
                    "position": list(decoded.position),
                    "velocity": list(decoded.velocity),
                    "effort": list(decoded.effort),
                }
            )
    if len(states) != len(want_states):
        problem(f"mcap-ros2-support decoded {len(states)} JointState messages, expected {len(want_states)}")
    shown = 0
    for index, (state, want) in enumerate(zip(states, want_states)):
        if state != want and shown < 20:
            problem(f"JointState {index} decoded as {state}, expected {want}")
            shown += 1

    print(f"{len(want_messages)} messages, {len(want_states)} JointState, {len(expected['attachments'])} attachments, "
          f"{len(expected['metadata'])} metadata checked: {len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
