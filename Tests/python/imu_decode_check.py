#!/usr/bin/env python3
"""Cross-check Sinew's MAVLink 2 IMU codec against pymavlink (PyPI), an independent decoder.

  imu_decode_check.py decode FRAMES.bin EXPECTED.json
      Decode a byte stream written by Sinew's encoder with pymavlink and compare every message, in order,
      with the values listed in EXPECTED.json ({"messages": [{"message": NAME, "seq": ..., fields...}]}).
      Exit 0 when all match and pymavlink reports no bad data, 1 otherwise.

  imu_decode_check.py stream DEVICE EXPECTED.json
      Same check, reading the bytes live from a serial device or pseudo-terminal (already in raw mode)
      until every expected message arrived or nothing came for 10 s.

  imu_decode_check.py encode FRAMES.bin EXPECTED.json
      Write a stream encoded by pymavlink (deterministic pseudo-random values) and the expected values,
      for Sinew's decoder to check the other direction.

Run it from the virtual environment that has pymavlink (.build/pyenv/bin/python).
"""
import json
import math
import random
import sys

from pymavlink.dialects.v20 import common as mavlink

# Field names per message, as in the MAVLink common dialect; the JSON uses the same names.
FIELDS = {
    "HEARTBEAT": ["type", "autopilot", "base_mode", "custom_mode", "system_status", "mavlink_version"],
    "HIGHRES_IMU": ["time_usec", "xacc", "yacc", "zacc", "xgyro", "ygyro", "zgyro", "xmag", "ymag", "zmag",
                    "abs_pressure", "diff_pressure", "pressure_alt", "temperature", "fields_updated", "id"],
    "SCALED_IMU": ["time_boot_ms", "xacc", "yacc", "zacc", "xgyro", "ygyro", "zgyro", "xmag", "ymag", "zmag",
                   "temperature"],
    "ATTITUDE_QUATERNION": ["time_boot_ms", "q1", "q2", "q3", "q4", "rollspeed", "pitchspeed", "yawspeed",
                            "repr_offset_q"],
}


def same(a, b):
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        # Both sides hold the same float32; allow for a decimal round trip through JSON.
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def read_device(path, wanted):
    """Bytes from a tty until `wanted` frames decoded or 10 s of silence; termios is left untouched
    (changing it with TCSAFLUSH would discard what the writer already sent)."""
    import os
    import select
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    parser = mavlink.MAVLink(None)
    parser.robust_parsing = True
    data = bytearray()
    frames = 0
    try:
        while frames < wanted:
            ready, _, _ = select.select([fd], [], [], 10.0)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
            for message in parser.parse_buffer(bytes(chunk)) or []:
                if message.get_type() != "BAD_DATA":
                    frames += 1
    finally:
        os.close(fd)
    return bytes(data)


def decode(frames_path, expected_path, live=False):
    with open(expected_path) as f:
        expected = json.load(f)["messages"]
    if live:
        data = read_device(frames_path, len(expected))
    else:
        with open(frames_path, "rb") as f:
            data = f.read()
    parser = mavlink.MAVLink(None)
    parser.robust_parsing = True
    decoded = []
    bad = 0
    for byte in data:
        message = parser.parse_char(bytes([byte]))
        if message is None:
            continue
        if message.get_type() == "BAD_DATA":
            bad += 1
            continue
        decoded.append(message)
    errors = []
    if bad:
        errors.append("pymavlink reported %d BAD_DATA messages" % bad)
    if len(decoded) != len(expected):
        errors.append("decoded %d messages, expected %d" % (len(decoded), len(expected)))
    for index, (message, want) in enumerate(zip(decoded, expected)):
        kind = message.get_type()
        if kind != want["message"]:
            errors.append("#%d: message %s, expected %s" % (index, kind, want["message"]))
            continue
        header = message.get_header()
        for key, got in (("seq", header.seq), ("sysid", header.srcSystem), ("compid", header.srcComponent)):
            if key in want and want[key] != got:
                errors.append("#%d %s: %s %r, expected %r" % (index, kind, key, got, want[key]))
        for field in FIELDS[kind]:
            got = getattr(message, field)
            if not same(want[field], got):
                errors.append("#%d %s.%s: %r, expected %r" % (index, kind, field, got, want[field]))
    counts = {}
    for message in decoded:
        counts[message.get_type()] = counts.get(message.get_type(), 0) + 1
    print("pymavlink %s decoded %d frames %s from %d bytes; %d mismatches"
          % (mavlink_version(), len(decoded), json.dumps(counts, sort_keys=True), len(data), len(errors)))
    for error in errors[:20]:
        print("  " + error)
    return 0 if not errors else 1


def mavlink_version():
    try:
        from importlib.metadata import version
        return version("pymavlink")
    except Exception:
        return "?"


def f32(x):
    import struct
    return struct.unpack("<f", struct.pack("<f", x))[0]


def encode(frames_path, expected_path):
    rng = random.Random(2026)
    sender = mavlink.MAVLink(None, srcSystem=7, srcComponent=200)
    out = bytearray()
    expected = []
    for i in range(300):
        kind = ["HIGHRES_IMU", "SCALED_IMU", "ATTITUDE_QUATERNION", "HEARTBEAT"][i % 4]
        if kind == "HIGHRES_IMU":
            values = [rng.randrange(0, 2**63)] + [f32(rng.uniform(-50, 50)) for _ in range(13)]
            values += [rng.randrange(0, 2**16), rng.randrange(0, 3)]
            message = sender.highres_imu_encode(*values)
        elif kind == "SCALED_IMU":
            values = [rng.randrange(0, 2**32)] + [rng.randrange(-32768, 32768) for _ in range(10)]
            message = sender.scaled_imu_encode(*values)
        elif kind == "ATTITUDE_QUATERNION":
            offset = [0.0] * 4 if i % 8 == 2 else [f32(rng.uniform(-1, 1)) for _ in range(4)]
            values = [rng.randrange(0, 2**32)] + [f32(rng.uniform(-3, 3)) for _ in range(7)] + [offset]
            message = sender.attitude_quaternion_encode(*values)
        else:
            values = [rng.randrange(0, 20), rng.randrange(0, 20), rng.randrange(0, 256), rng.randrange(0, 2**32),
                      rng.randrange(0, 9), 3]
            message = sender.heartbeat_encode(*values)
        seq = i % 256
        sender.seq = seq
        out += message.pack(sender)
        want = {"message": kind, "seq": seq, "sysid": 7, "compid": 200}
        want.update(zip(FIELDS[kind], values))
        expected.append(want)
    with open(frames_path, "wb") as f:
        f.write(out)
    with open(expected_path, "w") as f:
        json.dump({"messages": expected}, f)
    print("pymavlink %s encoded %d frames, %d bytes" % (mavlink_version(), len(expected), len(out)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("decode", "stream", "encode"):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "encode":
        sys.exit(encode(sys.argv[2], sys.argv[3]))
    sys.exit(decode(sys.argv[2], sys.argv[3], live=sys.argv[1] == "stream"))
