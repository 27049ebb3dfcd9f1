#!/usr/bin/env python3
"""Synthesises the human-like leader-arm demonstrations shipped in Hardware/robots/<robot>/motions/.

There is no real recording of a person moving a leader arm in this repository, so this script makes one up,
deterministically, and says so in the file it writes: a pick-and-place demonstration built the way human
reaching is usually modelled, then checked against the robot's URDF.

- Every reach between two poses is a minimum-jerk movement (Flash & Hogan, 1985) that lands a little off its
  target (an error of a few percent of the distance), followed by a short corrective submovement that removes
  the error, overlapping the end of the main one; the joints do not start and stop together (a few tens of
  milliseconds apart), and each reach takes a little more or less time than the last.
- Pauses between reaches are uneven (0.2-0.75 s); the hand never quite holds still: physiological tremor
  (8-12 Hz, about 0.5 mrad) and a slow sway (0.2-0.8 Hz, about 2 mrad) ride on every joint.
- Samples come at 100 Hz with a millisecond of timestamp jitter, as a USB recording loop gives them.
- The file starts and ends at the same pose, at rest (tremor faded in and out), so it loops seamlessly.

Checks before anything is written: every position within the URDF's joint limits (less a margin), every joint
speed under a bound a hand on a leader arm stays within, and the follower's gripper frame, placed by forward
kinematics from the URDF, inside the follower's robot.yaml workspace box at every sample.

Standard library only. Usage (from the repository root):

    python3 Hardware/robots/synthesise_motion.py so101          # writes so101/motions/pick-and-place.csv
    python3 Hardware/robots/synthesise_motion.py dxl6
    python3 Hardware/robots/synthesise_motion.py so101 --check  # the committed file is what this script writes
    python3 Hardware/robots/synthesise_motion.py koch --sweep   # writes koch/motions/calibration-sweep.csv
    python3 Hardware/robots/synthesise_motion.py koch --sweep --check

--sweep writes the calibration sweep instead (see SWEEP_* below): not a demonstration, a hand taking every joint
through its range for LeRobot's interactive calibration (`sinew virtual-bus --robot ... --hand FILE`).
"""

import argparse
import math
import os
import random
import sys
import xml.etree.ElementTree as ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
RATE_HZ = 100.0
LIMIT_MARGIN_RAD = 0.05
MAX_SPEED_RAD_S = 2.5

# Per robot: the joints in column order, the follower's workspace box for its tool frame (robot.yaml
# safety.workspace), and the demonstration as a list of steps. A step is ("reach", pose) — a pose gives
# every joint, or ("grip", value) moves the gripper alone, or ("pause", seconds_low, seconds_high).
ROBOTS = {
    "so101": {
        "urdf": "so101/so101.urdf",
        "joints": ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"],
        "tool": "gripper_frame_link",
        "box": ((-0.2, -0.45, 0.005), (0.5, 0.45, 0.55)),
        "seed": 101,
        # Poses in rad, as in so101/robot.yaml's pick-and-place (gripper open 1.2, closed 0.15).
        "home": [0.0, -1.2, 1.2, 0.7, 0.0, 0.1],
        "steps": [
            ("reach", [0.5, -0.7, 0.7, 1.1, 0.3, 1.2]),  # approach the object, opening the gripper
            ("reach", [0.5, -0.05, 0.5, 1.1, 0.3, 1.2]),  # down to it
            ("grip", 0.15),  # grasp
            ("reach", [0.5, -0.8, 0.6, 1.1, 0.3, 0.15]),  # lift
            ("reach", [-0.6, -0.8, 0.6, 1.1, -0.3, 0.15]),  # carry, turning it
            ("reach", [-0.6, -0.2, 0.5, 1.1, -0.3, 0.15]),  # lower
            ("grip", 1.2),  # release
            ("reach", [-0.6, -0.8, 0.6, 1.0, -0.3, 1.0]),  # back off
            ("reach", [-0.1, -0.9, 0.9, 0.9, 0.0, 1.1]),  # look at the next object
            ("reach", [0.1, -0.15, 0.55, 1.05, 0.1, 1.1]),  # down to it
            ("grip", 0.2),  # grasp
            ("reach", [0.1, -0.85, 0.65, 1.0, 0.1, 0.2]),  # lift
            ("reach", [0.45, -0.85, 0.65, 1.0, 0.4, 0.2]),  # carry
            ("reach", [0.45, -0.25, 0.5, 1.05, 0.4, 0.2]),  # lower
            ("grip", 1.0),  # release
            ("reach", [0.3, -0.9, 0.9, 0.9, 0.2, 0.6]),  # back off
            ("reach", None),  # home
        ],
    },
    "koch": {
        "urdf": "koch/koch.urdf",
        "joints": ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"],
        "tool": "gripper_frame_link",
        "box": ((-0.45, -0.45, 0.005), (0.45, 0.45, 0.45)),
        "seed": 1190,
        # Poses in rad, as in koch/robot.yaml's pick-and-place (gripper open 1.2, closed 0.2).
        "home": [0.0, -0.2, 1.6, 1.2, 0.0, 0.2],
        "steps": [
            ("reach", [0.5, 0.6, 1.2, 1.2, 0.0, 1.2]),  # approach, opening the gripper
            ("reach", [0.5, 0.9, 1.0, 1.1, 0.0, 1.2]),  # down to the object
            ("grip", 0.2),  # grasp
            ("reach", [0.5, 0.5, 1.3, 1.2, 0.0, 0.2]),  # lift
            ("reach", [-0.5, 0.5, 1.3, 1.2, 0.5, 0.2]),  # carry, turning it
            ("reach", [-0.5, 0.9, 1.0, 1.1, 0.5, 0.2]),  # lower
            ("grip", 1.2),  # release
            ("reach", [-0.5, 0.5, 1.3, 1.2, 0.5, 1.0]),  # back off
            ("reach", [0.0, 0.4, 1.4, 1.2, 0.0, 1.0]),  # the next object
            ("reach", [0.1, 0.85, 1.05, 1.1, -0.3, 1.0]),  # down to it
            ("grip", 0.25),  # grasp
            ("reach", [0.1, 0.45, 1.35, 1.2, -0.3, 0.25]),  # lift
            ("reach", [0.55, 0.45, 1.35, 1.2, 0.2, 0.25]),  # carry
            ("reach", [0.55, 0.85, 1.05, 1.1, 0.2, 0.25]),  # lower
            ("grip", 1.1),  # release
            ("reach", [0.3, 0.3, 1.5, 1.2, 0.1, 0.6]),  # back off
            ("reach", None),  # home
        ],
    },
    "dxl6": {
        "urdf": "dxl6/dxl6.urdf",
        "joints": ["base_yaw", "shoulder", "elbow", "wrist_pitch", "wrist_roll", "gripper"],
        "tool": "tool_link",
        "box": ((-0.55, -0.55, 0.005), (0.55, 0.55, 0.65)),
        "seed": 6,
        # Poses in rad, as in dxl6/robot.yaml's pick-and-place (gripper open 0.9, closed 0.1).
        "home": [0.0, -0.3, 2.0, 1.0, 0.0, 0.1],
        "steps": [
            ("reach", [0.45, 0.45, 1.35, 1.32, 0.0, 0.9]),  # approach, opening the gripper
            ("reach", [0.45, 0.75, 1.35, 1.02, 0.0, 0.9]),  # down to the object
            ("grip", 0.1),  # grasp
            ("reach", [0.45, 0.45, 1.35, 1.32, 0.0, 0.1]),  # lift
            ("reach", [-0.45, 0.45, 1.35, 1.32, 0.6, 0.1]),  # carry, turning the object
            ("reach", [-0.45, 0.7, 1.35, 1.07, 0.6, 0.1]),  # lower
            ("grip", 0.9),  # release
            ("reach", [-0.45, 0.4, 1.4, 1.3, 0.6, 0.8]),  # back off
            ("reach", [0.0, 0.3, 1.5, 1.2, 0.0, 0.8]),  # the next object
            ("reach", [0.05, 0.7, 1.35, 1.05, -0.3, 0.8]),  # down to it
            ("grip", 0.15),  # grasp
            ("reach", [0.05, 0.4, 1.4, 1.3, -0.3, 0.15]),  # lift
            ("reach", [0.5, 0.4, 1.4, 1.3, 0.2, 0.15]),  # carry
            ("reach", [0.5, 0.7, 1.35, 1.05, 0.2, 0.15]),  # lower
            ("grip", 0.85),  # release
            ("reach", [0.3, 0.2, 1.6, 1.2, 0.1, 0.5]),  # back off
            ("reach", None),  # home
        ],
    },
}


def minimum_jerk(s):
    """Fraction of the way at normalised time s (0 before the start, 1 after the end)."""
    if s <= 0:
        return 0.0
    if s >= 1:
        return 1.0
    return s * s * s * (10 - 15 * s + 6 * s * s)


def smoothstep(s):
    s = min(max(s, 0.0), 1.0)
    return s * s * (3 - 2 * s)


class Submovement:
    """A minimum-jerk increment of one joint: `delta` rad from `start` for `duration` s."""

    def __init__(self, joint, start, duration, delta):
        self.joint, self.start, self.duration, self.delta = joint, start, duration, delta

    def value(self, t):
        return self.delta * minimum_jerk((t - self.start) / self.duration)


def plan(robot, rng):
    """The submovements of the whole demonstration, and when it ends (s)."""
    joints = robot["joints"]
    home = robot["home"]
    gripper = joints.index("gripper")
    pose = list(home)
    moves = []
    t = 0.8  # at rest in the hand first
    for kind, target in robot["steps"]:
        if kind == "grip":
            goal = list(pose)
            goal[gripper] = target
        else:
            goal = list(home if target is None else target)
        distance = max(abs(g - p) for g, p in zip(goal, pose))
        duration = (0.6 + 0.8 * distance) * rng.uniform(0.85, 1.15)
        if kind == "grip":
            duration = rng.uniform(0.45, 0.65) + 0.6 * distance
        for j, (p, g) in enumerate(zip(pose, goal)):
            if abs(g - p) < 1e-9:
                continue
            # The main reach lands a few percent off; a corrective submovement, overlapping its end, fixes it.
            error = rng.gauss(0.0, 0.03 * abs(g - p) + 0.002)
            lag = rng.uniform(0.0, 0.08)
            main = duration - lag - rng.uniform(0.0, 0.06)
            moves.append(Submovement(j, t + lag, main, g - p + error))
            moves.append(Submovement(j, t + lag + 0.8 * main, rng.uniform(0.22, 0.35), -error))
        pose = goal
        t += duration + 0.15 + rng.uniform(0.05, 0.6)
    return moves, t + 0.6


def oscillators(rng, joints):
    """Per joint: tremor (8-12 Hz) and sway (0.2-0.8 Hz) as sums of sinusoids with random phases."""
    result = []
    for _ in joints:
        tremor = [(rng.uniform(8, 12), rng.uniform(0, 2 * math.pi), 0.00025) for _ in range(4)]
        sway = [(rng.uniform(0.2, 0.8), rng.uniform(0, 2 * math.pi), 0.0012) for _ in range(3)]
        result.append(tremor + sway)
    return result


def synthesise(robot):
    rng = random.Random(robot["seed"])
    moves, end = plan(robot, rng)
    wobble = oscillators(rng, robot["joints"])
    rows = []
    count = int(round(end * RATE_HZ))
    end = count / RATE_HZ
    for i in range(count + 1):
        nominal = i / RATE_HZ
        # Timestamps as a recording loop stamps them: late by up to a millisecond, never out of order.
        t = nominal if i in (0, count) else nominal + rng.uniform(0.0, 0.0009)
        envelope = smoothstep(t / 0.5) * smoothstep((end - t) / 0.5)
        positions = list(robot["home"])
        for move in moves:
            positions[move.joint] += move.value(t)
        for j, terms in enumerate(wobble):
            positions[j] += envelope * sum(a * math.sin(2 * math.pi * f * t + phase) for f, phase, a in terms)
        rows.append((t, positions))
    return rows


def urdf_joints(path):
    """name -> (type, parent, child, xyz, rpy, axis, lower, upper) for the URDF's top-level joints."""
    joints = {}
    for joint in ElementTree.parse(path).getroot().findall("joint"):
        origin = joint.find("origin")
        xyz = [float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()]
        rpy = [float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()]
        axis_element = joint.find("axis")
        axis = [float(v) for v in (axis_element.get("xyz") if axis_element is not None else "1 0 0").split()]
        limit = joint.find("limit")
        lower = float(limit.get("lower", "0")) if limit is not None else 0.0
        upper = float(limit.get("upper", "0")) if limit is not None else 0.0
        joints[joint.get("name")] = (
            joint.get("type"), joint.find("parent").get("link"), joint.find("child").get("link"),
            xyz, rpy, axis, lower, upper)
    return joints


def matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(4)) for j in range(4)] for i in range(4)]


def transform(xyz, rotation):
    return [rotation[0] + [xyz[0]], rotation[1] + [xyz[1]], rotation[2] + [xyz[2]], [0.0, 0.0, 0.0, 1.0]]


def rpy_rotation(roll, pitch, yaw):
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw),
                              math.sin(yaw))
    return [[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr]]


def axis_rotation(axis, angle):
    norm = math.sqrt(sum(a * a for a in axis))
    x, y, z = (a / norm for a in axis)
    c, s, v = math.cos(angle), math.sin(angle), 1 - math.cos(angle)
    return [[c + x * x * v, x * y * v - z * s, x * z * v + y * s],
            [y * x * v + z * s, c + y * y * v, y * z * v - x * s],
            [z * x * v - y * s, z * y * v + x * s, c + z * z * v]]


def tool_position(joints, tool, positions):
    """The tool link's origin in the root frame for joint positions by name (URDF forward kinematics)."""
    by_child = {child: (name, spec) for name, (spec) in joints.items() for child in [spec[2]]}
    chain = []
    link = tool
    while link in by_child:
        name, spec = by_child[link]
        chain.append((name, spec))
        link = spec[1]
    pose = transform([0, 0, 0], rpy_rotation(0, 0, 0))
    for name, (kind, _, _, xyz, rpy, axis, _, _) in reversed(chain):
        pose = matmul(pose, transform(xyz, rpy_rotation(*rpy)))
        if kind in ("revolute", "continuous"):
            pose = matmul(pose, transform([0, 0, 0], axis_rotation(axis, positions.get(name, 0.0))))
        elif kind == "prismatic":
            q = positions.get(name, 0.0)
            pose = matmul(pose, transform([a * q for a in axis], rpy_rotation(0, 0, 0)))
    return [pose[0][3], pose[1][3], pose[2][3]]


def check(robot, rows):
    """Raises SystemExit naming the first sample that breaks a limit."""
    joints = urdf_joints(os.path.join(HERE, robot["urdf"]))
    names = robot["joints"]
    low, high = robot["box"]
    for i, (t, positions) in enumerate(rows):
        for name, q in zip(names, positions):
            lower, upper = joints[name][6], joints[name][7]
            if not lower + LIMIT_MARGIN_RAD <= q <= upper - LIMIT_MARGIN_RAD:
                sys.exit(f"t = {t:.3f} s: {name} = {q:.4f} rad is outside [{lower}, {upper}] less {LIMIT_MARGIN_RAD}")
        if i > 0:
            previous_t, previous = rows[i - 1]
            for name, q, p in zip(names, positions, previous):
                speed = abs(q - p) / (t - previous_t)
                if speed > MAX_SPEED_RAD_S:
                    sys.exit(f"t = {t:.3f} s: {name} moves at {speed:.2f} rad/s (> {MAX_SPEED_RAD_S})")
        if i % 5 == 0:
            x, y, z = tool_position(joints, robot["tool"], dict(zip(names, positions)))
            if not all(lo <= v <= hi for v, lo, hi in zip((x, y, z), low, high)):
                sys.exit(f"t = {t:.3f} s: {robot['tool']} at ({x:.3f}, {y:.3f}, {z:.3f}) m leaves {robot['box']}")


# The calibration sweep (--sweep): a hand holding the arm at the middle of every joint's range (what LeRobot's
# calibration asks for first), then moving each joint in turn to its lower limit, its upper limit and back, as
# LeRobot's "move all joints sequentially through their entire ranges of motion" asks; no tremor, exact 100 Hz.
SWEEP_HOLD_S = 3.0
SWEEP_PEAK_RAD_S = 3.5
SWEEP_LIMIT_MARGIN_RAD = 0.01
SWEEP_PAUSE_S = 0.2


def sweep(robot):
    """Rows of the calibration sweep: (time, positions) at 100 Hz, starting and ending at the middle pose."""
    joints = urdf_joints(os.path.join(HERE, robot["urdf"]))
    names = robot["joints"]
    lower = [joints[n][6] + SWEEP_LIMIT_MARGIN_RAD for n in names]
    upper = [joints[n][7] - SWEEP_LIMIT_MARGIN_RAD for n in names]
    middle = [(joints[n][6] + joints[n][7]) / 2 for n in names]
    segments = []  # (joint, start time, duration, from, to)
    t = SWEEP_HOLD_S
    for j in range(len(names)):
        for start, end in ((middle[j], lower[j]), (lower[j], upper[j]), (upper[j], middle[j])):
            # A minimum-jerk movement peaks at 1.875 times its average speed.
            duration = max(0.4, 1.875 * abs(end - start) / SWEEP_PEAK_RAD_S)
            segments.append((j, t, duration, start, end))
            t += duration
        t += SWEEP_PAUSE_S
    end = math.ceil((t + 1.0) * RATE_HZ) / RATE_HZ
    rows = []
    for i in range(int(round(end * RATE_HZ)) + 1):
        now = i / RATE_HZ
        positions = list(middle)
        for j, start, duration, a, b in segments:
            if now >= start:
                positions[j] = a + (b - a) * minimum_jerk((now - start) / duration)
        rows.append((now, positions))
    return rows


def check_sweep(robot, rows):
    """Every position within the URDF's limits, every speed within the sweep's peak (plus sampling slack)."""
    joints = urdf_joints(os.path.join(HERE, robot["urdf"]))
    names = robot["joints"]
    for i, (t, positions) in enumerate(rows):
        for name, q in zip(names, positions):
            if not joints[name][6] <= q <= joints[name][7]:
                sys.exit(f"t = {t:.3f} s: {name} = {q:.4f} rad is outside [{joints[name][6]}, {joints[name][7]}]")
        if i > 0:
            previous_t, previous = rows[i - 1]
            for name, q, p in zip(names, positions, previous):
                if abs(q - p) / (t - previous_t) > SWEEP_PEAK_RAD_S * 1.01:
                    sys.exit(f"t = {t:.3f} s: {name} moves faster than {SWEEP_PEAK_RAD_S} rad/s")


def render_sweep(name, robot, rows):
    lines = [
        f"# {name}: a calibration sweep, SYNTHESISED (Hardware/robots/synthesise_motion.py {name} --sweep): a hand",
        f"# holds every joint at the middle of its URDF range for {SWEEP_HOLD_S:.0f} s, then moves each joint in turn to "
        + f"within {SWEEP_LIMIT_MARGIN_RAD * 1000:.0f} mrad",
        f"# of its lower limit, its upper limit and back (minimum-jerk, at most {SWEEP_PEAK_RAD_S} rad/s), and holds "
        + "the middle again;",
        "# loops. For LeRobot's calibration: `sinew virtual-bus --robot ... --hand` this file. Joint angles in rad.",
        "t_s," + ",".join(robot["joints"]),
    ]
    for t, positions in rows:
        lines.append(f"{t:.3f}," + ",".join(f"{round(q, 5) + 0.0:.5f}" for q in positions))
    if lines[-1].split(",")[1:] != lines[5].split(",")[1:]:
        sys.exit("the sweep does not end where it starts")
    return "\n".join(lines) + "\n"


def render(name, robot, rows):
    lines = [
        f"# {name}: a leader-arm pick-and-place demonstration, SYNTHESISED, not recorded: written by",
        f"# Hardware/robots/synthesise_motion.py {name} (seed {robot['seed']}); minimum-jerk reaches with",
        "# corrective submovements, uneven pauses, tremor and sway, 100 Hz. Joint angles in rad (URDF joints).",
        "t_s," + ",".join(robot["joints"]),
    ]
    first = None
    for i, (t, positions) in enumerate(rows):
        text = ",".join(f"{round(q, 5) + 0.0:.5f}" for q in positions)  # + 0.0: no "-0.00000"
        if i == 0:
            first = text
        if i == len(rows) - 1:
            # Tremor has faded and every reach is over: the last row is the first pose, so playback loops.
            if text != first:
                sys.exit(f"the demonstration does not end where it starts: {text} vs {first}")
        lines.append(f"{t:.3f},{text}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("robot", choices=sorted(ROBOTS))
    parser.add_argument("--check", action="store_true", help="compare with the committed file; write nothing")
    parser.add_argument("--sweep", action="store_true", help="the calibration sweep (calibration-sweep.csv)")
    arguments = parser.parse_args()
    robot = ROBOTS[arguments.robot]
    if arguments.sweep:
        rows = sweep(robot)
        check_sweep(robot, rows)
        text = render_sweep(arguments.robot, robot, rows)
        path = os.path.join(HERE, arguments.robot, "motions", "calibration-sweep.csv")
    else:
        rows = synthesise(robot)
        check(robot, rows)
        text = render(arguments.robot, robot, rows)
        path = os.path.join(HERE, arguments.robot, "motions", "pick-and-place.csv")
    if arguments.check:
        with open(path, encoding="utf-8") as existing:
            if existing.read() != text:
                sys.exit(f"{path} is not what this script writes: regenerate it")
        print(f"{path}: up to date ({len(rows)} rows, {rows[-1][0]:.1f} s)")
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"wrote {path}: {len(rows)} rows, {rows[-1][0]:.1f} s, {len(text)} bytes")


if __name__ == "__main__":
    main()
