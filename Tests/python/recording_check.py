#!/usr/bin/env python3
"""Check a flight recording of `sinew run --record` with the official MCAP readers for Python.

  recording_check.py FILE.mcap ROBOT.yaml EXPORT.csv

FILE.mcap: the recording; ROBOT.yaml: the file the run was given (its bytes must be attached); EXPORT.csv: what
`sinew recording export FILE.mcap --csv DIR` wrote from the same file (Sinew's own reading, compared value for
value with what Python reads).

Checks, with mcap's seeking reader (validate_crcs=True) and again with its non-seeking reader:
  - the statistics' counts equal the messages read; /joint_states, /commands, /estimates and /timing hold one
    message per tick (ticks numbered 0, 1, 2, … in each segment), /activation one per start, /robot_description
    one; log times never go backwards on a channel;
  - every JSON message parses and holds a value for every joint the metadata names;
  - joint positions equal the CSV export's, bit for bit (JSON numbers are written in shortest round-trip form);
  - with the ros2 profile, /joint_states decodes with mcap-ros2-support as sensor_msgs/msg/JointState;
  - robot.yaml, the URDF, command_line.txt and version.txt are attached, robot.yaml byte for byte.

Prints one line per problem and a closing line "N messages, T ticks checked: P problems"; exit 0 when P is 0.
"""
import csv
import json
import sys

from mcap.reader import NonSeekingReader, SeekingReader
from mcap_ros2.decoder import DecoderFactory

problems = []


def problem(text):
    problems.append(text)
    if len(problems) <= 40:
        print("PROBLEM " + text)


def main():
    path, robot_yaml, export_csv = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(export_csv, newline="") as f:
        rows = list(csv.DictReader(f))

    with open(path, "rb") as f:
        reader = SeekingReader(f, validate_crcs=True)
        header = reader.get_header()
        if not header.library.startswith("sinew "):
            problem(f"header library {header.library!r}")
        ros2 = header.profile == "ros2"
        summary = reader.get_summary()
        metadata = {}
        for record in reader.iter_metadata():
            if record.name == "sinew":
                metadata = dict(record.metadata)
        joints = metadata.get("joints", "").split(",")
        if not joints or joints == [""]:
            problem("no joints in the metadata")
        counts = {}
        last_log = {}
        ticks = []
        starts = 0
        positions = []
        total = 0
        factory = DecoderFactory()
        decoders = {}
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            total += 1
            topic = channel.topic
            counts[topic] = counts.get(topic, 0) + 1
            if message.log_time < last_log.get(topic, 0):
                problem(f"{topic}: log time goes back at message {counts[topic]}")
            last_log[topic] = message.log_time
            if channel.message_encoding == "cdr":
                if channel.id not in decoders:
                    decoders[channel.id] = factory.decoder_for(channel.message_encoding, schema)
                decoded = decoders[channel.id](message.data)
                if list(decoded.name) != joints:
                    problem(f"{topic}: names {list(decoded.name)}")
                positions.append(list(decoded.position))
                continue
            body = json.loads(message.data)
            if topic == "/joint_states":
                for field in ("position", "velocity", "effort"):
                    if sorted(body[field]) != sorted(joints):
                        problem(f"/joint_states tick {body['tick']}: {field} has {sorted(body[field])}")
                positions.append([body["position"][j] for j in joints])
                ticks.append(body["tick"])
            elif topic == "/commands":
                if sorted(body["command"]) != sorted(joints):
                    problem(f"/commands tick {body['tick']}: command has {sorted(body['command'])}")
                if ros2:
                    ticks.append(body["tick"])
            elif topic == "/activation":
                starts += 1
            elif topic == "/tf":
                if not body["transforms"]:
                    problem("/tf without transforms")

        if summary is None or summary.statistics is None:
            problem("no summary statistics")
        else:
            if summary.statistics.message_count != total:
                problem(f"statistics say {summary.statistics.message_count} messages, read {total}")
            by_topic = {summary.channels[c].topic: n for c, n in summary.statistics.channel_message_counts.items()}
            for topic, n in counts.items():
                if by_topic.get(topic) != n:
                    problem(f"statistics say {by_topic.get(topic)} messages on {topic}, read {n}")

        tick_count = len(rows)
        for topic in ("/joint_states", "/commands", "/estimates", "/timing"):
            if counts.get(topic, 0) != tick_count:
                problem(f"{topic}: {counts.get(topic, 0)} messages for {tick_count} ticks")
        if counts.get("/robot_description") != 1:
            problem(f"/robot_description: {counts.get('/robot_description')} messages")
        if starts < 1:
            problem("no /activation message")
        expected = 0
        for tick in ticks:
            if tick != expected and tick != 0:
                problem(f"tick {tick} after {expected - 1}")
            expected = tick + 1

        # Sinew's own reading (the CSV export) against Python's, value for value.
        for k, (row, read) in enumerate(zip(rows, positions)):
            want = [float(row[f"{j}.position_rad"]) for j in joints]
            if read != want:
                problem(f"tick {k}: positions {read}, export has {want}")
                break

        names = {a.name: a for a in reader.iter_attachments()}
        with open(robot_yaml, "rb") as y:
            mine = y.read()
        yaml_name = metadata.get("robot_yaml", "robot.yaml")
        if yaml_name not in names or names[yaml_name].data != mine:
            problem(f"{yaml_name} is not attached as it is on disk")
        for wanted in ("command_line.txt", "version.txt"):
            if wanted not in names:
                problem(f"{wanted} is not attached")
        if not any(a.media_type == "application/xml" for a in names.values()):
            problem("no URDF attached")

    with open(path, "rb") as f:
        again = sum(1 for _ in NonSeekingReader(f, validate_crcs=True).iter_messages())
    if again != total:
        problem(f"the non-seeking reader read {again} messages, the seeking one {total}")

    print(f"{total} messages, {tick_count} ticks checked: {len(problems)} problems")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
