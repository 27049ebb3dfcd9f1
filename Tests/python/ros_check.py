"""A ROS 2 peer without ROS: PyPI cyclonedds in a process of its own, talking to a Sinew robot on the DDS wire the way
ROS 2 nodes do (topics rt/NAMESPACE/name, types pkg::msg::dds_::Name_, XCDR1). Used by
Tests/SinewCLITests/ROSTests.swift and Benchmarks/ros/bench_ros.py; prints one JSON object on standard output.

  ros_check.py scenario  --namespace NS --domain N    discovery, joint_states, a trajectory followed, an e-stop
  ros_check.py faults    --namespace NS --domain N    a 1 kHz trajectory flood and malformed samples (raw writer)
  ros_check.py targets   --namespace NS --domain N    cmd targets, then none (the watchdog), then recover
  ros_check.py subscribe --namespace NS --domain N    a reliable joint_states reader that waits to be killed
  ros_check.py servos    --namespace NS --domain N --seconds S   per-servo diagnostics (temperature, voltage, tick)
  ros_check.py fleet     --domain N --count K         every robot's diagnostics and joint_states on a domain
  ros_check.py latency   --namespace NS --domain N    joint_states stamp → arrival here, and trajectory → tick
  ros_check.py watch     --namespaces A,B --domain N  joint_states of several robots: samples and rate each

The network comes from CYCLONEDDS_URI (the tests give loopback-only or unicast-peer configurations).
With SINEW_EXIT_WITH_PARENT=1 the process ends when the one that started it does (the test runner).
"""

import argparse
import ctypes
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import sequence, uint8
import cyclonedds.idl.annotations as annotate
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

import ros_types as r


def exit_with_parent():
    """End when the parent goes (SINEW_EXIT_WITH_PARENT=1): PR_SET_PDEATHSIG, and a watch on getppid as a backstop."""
    if os.environ.get("SINEW_EXIT_WITH_PARENT") != "1":
        return
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def now_ns():
    return time.time_ns()


def topic_name(namespace, name):
    return f"rt/{namespace}/{name}" if namespace else f"rt/{name}"


def wait_for(predicate, timeout_s):
    end = time.time() + timeout_s
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def publications(dp, seconds):
    """Topic → type name of every publication discovered within `seconds`."""
    reader = BuiltinDataReader(dp, BuiltinTopicDcpsPublication)
    found = {}
    end = time.time() + seconds
    while time.time() < end:
        for sample in reader.take(N=256):
            if getattr(sample, "topic_name", None):
                found[sample.topic_name] = sample.type_name
        time.sleep(0.02)
    return found


class Robot:
    """The endpoints a ROS 2 node would make towards one namespaced Sinew robot."""

    def __init__(self, dp, namespace):
        self.dp = dp
        self.namespace = namespace
        t = lambda name, cls, **kw: Topic(dp, topic_name(namespace, name), cls, qos=r.qos(**kw))
        self.joint_states = DataReader(dp, t("joint_states", r.JointState), qos=r.qos())
        self.tf = DataReader(dp, t("tf", r.TFMessage, depth=100), qos=r.qos(depth=100))
        self.diagnostics = DataReader(dp, t("diagnostics", r.DiagnosticArray), qos=r.qos())
        self.imu = DataReader(dp, t("imu", r.Imu, reliable=False, depth=5), qos=r.qos(reliable=False, depth=5))
        latched = dict(depth=1, transient_local=True)
        self.description = DataReader(dp, t("robot_description", r.String, **latched), qos=r.qos(**latched))
        self.trajectory = DataWriter(dp, t("joint_trajectory", r.JointTrajectory), qos=r.qos())
        self.cmd = DataWriter(dp, t("cmd", r.JointState), qos=r.qos())
        self.estop = DataWriter(dp, t("estop", r.Empty), qos=r.qos())
        self.recover = DataWriter(dp, t("recover", r.Empty), qos=r.qos())

    def matched(self):
        return (
            self.joint_states.get_subscription_matched_status().current_count > 0
            and self.trajectory.get_publication_matched_status().current_count > 0
            and self.estop.get_publication_matched_status().current_count > 0
        )


def smooth_trajectory(names, start, goal, duration_s, points=21):
    """A JointTrajectory from `start` to `goal` (per name) along a cosine ramp, with velocities, stamp 0 (now)."""
    msg = r.JointTrajectory(joint_names=list(names))
    for k in range(points):
        t = duration_s * k / (points - 1)
        s = 0.5 * (1 - math.cos(math.pi * t / duration_s))
        ds = 0.5 * math.pi / duration_s * math.sin(math.pi * t / duration_s)
        msg.points.append(
            r.JointTrajectoryPoint(
                positions=[a + (b - a) * s for a, b in zip(start, goal)],
                velocities=[(b - a) * ds for a, b in zip(start, goal)],
                time_from_start=r.Duration(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)) % 1_000_000_000),
            )
        )
    return msg


def expected(start, goal, duration_s, t):
    s = 0.5 * (1 - math.cos(math.pi * min(max(t, 0.0), duration_s) / duration_s))
    return [a + (b - a) * s for a, b in zip(start, goal)]


def note_servo_diagnostics(out, messages):
    """The per-servo statuses (after the robot's) of the newest message that has temperatures read."""
    for d in messages:
        servos = [{kv.key: kv.value for kv in st.values} | {"level": int(st.level)} for st in d.status[1:]]
        if servos and all(sv.get("temperature_c", "").replace(".", "", 1).isdigit() for sv in servos):
            out["servo_diagnostics"] = servos


def scenario(args):
    dp = DomainParticipant(args.domain)
    robot = Robot(dp, args.namespace)
    out = {"matched": wait_for(robot.matched, 15)}
    if not out["matched"]:
        print(json.dumps(out))
        return 1
    types = publications(dp, 0.5)
    out["types"] = {k: v for k, v in types.items() if k.startswith(topic_name(args.namespace, ""))}
    # joint_states for a second: names, values, rate.
    # The writers match before the loop starts: measure from the first sample on.
    wait_for(lambda: len(robot.joint_states.take(N=10_000)) > 0, 10)
    t0 = time.time()
    samples = []
    while time.time() - t0 < 1.0:
        samples += robot.joint_states.take(N=1000)
        time.sleep(0.005)
    span = time.time() - t0
    out["joint_states_rate_hz"] = len(samples) / span
    stamps = [s.header.stamp.sec + s.header.stamp.nanosec * 1e-9 for s in samples]
    out["stamp_rate_hz"] = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0
    # Samples missed here: stamp steps longer than 1.5 periods of the median step.
    steps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    median = steps[len(steps) // 2] if steps else 0
    out["joint_states_gaps"] = sum(1 for d in steps if d > 1.5 * median)
    out["names"] = list(samples[-1].name) if samples else []
    first = list(samples[-1].position) if samples else []
    out["position_before"] = first
    out["tf_frames"] = sorted({t.child_frame_id for m in robot.tf.take(N=1000) for t in m.transforms})
    diagnostics = robot.diagnostics.take(N=100)
    out["diagnostics"] = (
        {kv.key: kv.value for kv in diagnostics[-1].status[0].values} if diagnostics and diagnostics[-1].status else {}
    )
    note_servo_diagnostics(out, diagnostics)
    imu = robot.imu.take(N=1000)
    out["imu_samples"] = len(imu)
    if imu:
        m = imu[-1]
        out["imu_covariance0"] = {
            "orientation": m.orientation_covariance[0],
            "angular_velocity": m.angular_velocity_covariance[0],
            "linear_acceleration": m.linear_acceleration_covariance[0],
        }
        # Held still: the accelerometer reads gravity alone.
        a = m.linear_acceleration
        out["imu_acceleration_norm_still"] = math.sqrt(a.x * a.x + a.y * a.y + a.z * a.z)
    description = robot.description.take(N=1)
    out["robot_description_bytes"] = len(description[0].data) if description else 0
    # A trajectory of two joints (the others hold): out and back in 2 s each.
    names = ["shoulder_pan", "elbow_flex"]
    index = [out["names"].index(n) for n in names]
    start = [first[i] for i in index]
    goal = [start[0] + 0.5, start[1] + 0.3]
    duration_s = 2.0
    msg = smooth_trajectory(names, start, goal, duration_s)
    robot.joint_states.take(N=10_000)
    sent = now_ns()
    robot.trajectory.write(msg)
    errors = []
    finals = None
    robot.imu.take(N=1000)
    rates = []
    end = time.time() + duration_s + 1.0
    while time.time() < end:
        for m in robot.imu.take(N=1000):
            w = m.angular_velocity
            rates.append(math.sqrt(w.x * w.x + w.y * w.y + w.z * w.z))
        for s in robot.joint_states.take(N=1000):
            ts = s.header.stamp.sec * 1_000_000_000 + s.header.stamp.nanosec
            want = expected(start, goal, duration_s, (ts - sent) * 1e-9)
            got = [s.position[i] for i in index]
            errors.append(max(abs(a - b) for a, b in zip(want, got)))
            finals = got
        time.sleep(0.005)
    out["tracking_max_rad"] = max(errors) if errors else None
    out["tracking_rms_rad"] = math.sqrt(sum(e * e for e in errors) / len(errors)) if errors else None
    out["final_error_rad"] = max(abs(a - b) for a, b in zip(finals, goal)) if finals else None
    out["tracking_samples"] = len(errors)
    # The gripper link turns with shoulder_pan: its gyroscope sees that in the Imu's angular velocity.
    out["imu_angular_speed_max_moving"] = max(rates) if rates else None
    # The e-stop.
    robot.estop.write(r.Empty())
    out["estop_sent_ns"] = now_ns()
    # Diagnostics go out at once when the state changes: wait (at most 2 s) for the one that says safe.
    end = time.time() + 2.0
    while time.time() < end and out.get("state_after_estop") != "safe":
        taken = robot.diagnostics.take(N=100)
        note_servo_diagnostics(out, taken)
        for d in taken:
            if d.status:
                out["state_after_estop"] = {kv.key: kv.value for kv in d.status[0].values}.get("state")
        time.sleep(0.01)
    print(json.dumps(out))
    return 0


@dataclass
@annotate.final
class RawTrajectory(IdlStruct, typename="trajectory_msgs::msg::dds_::JointTrajectory_"):
    """Not a JointTrajectory: a raw writer under its type name. Its CDR is a uint32 count, then the bytes."""

    data: sequence[uint8] = field(default_factory=list)


@dataclass
@annotate.final
class RawJointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    data: sequence[uint8] = field(default_factory=list)


def malformed_payloads(seed, count):
    """Byte strings that are no valid message: random, lying counts, strings without NUL, truncated."""
    rng = random.Random(seed)
    payloads = []
    for k in range(count):
        kind = k % 4
        if kind == 0:
            payloads.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64))))
        elif kind == 1:  # stamp, a frame id, then joint_names claiming a billion names
            payloads.append(bytes([0, 0, 0, 0, 1, 0, 0, 0, 0]) + b"\0\0\0" + (10**9).to_bytes(4, "little"))
        elif kind == 2:  # a frame id of 9 bytes without its NUL
            payloads.append(bytes([0, 0, 0, 0]) + (9).to_bytes(4, "little") + b"abcdefghi")
        else:  # a frame id longer than the sample
            payloads.append(bytes([0, 0, 0, 0]) + (4000).to_bytes(4, "little") + b"ab")
    return payloads


def diagnosed(robot, want, timeout_s):
    """The robot's diagnostics (state, safety_cause) once its state is `want`, or the last seen after `timeout_s`."""
    seen = {}
    end = time.time() + timeout_s
    while time.time() < end:
        for d in robot.diagnostics.take(N=100):
            if d.status:
                seen = {kv.key: kv.value for kv in d.status[0].values}
        if seen.get("state") == want:
            break
        time.sleep(0.01)
    return {"state": seen.get("state"), "safety_cause": seen.get("safety_cause")}


def targets(args):
    """Direct targets on cmd at 100 Hz for 1.5 s (the gripper to 0.1 rad from where it is), then none: the watchdog
    takes the robot to its safe state; then a recover sample brings it back."""
    dp = DomainParticipant(args.domain)
    robot = Robot(dp, args.namespace)
    out = {"matched": wait_for(robot.matched, 15)}
    if not out["matched"]:
        print(json.dumps(out))
        return 1
    states = []
    wait_for(lambda: states.extend(robot.joint_states.take(N=1000)) or len(states) > 0, 10)
    names = list(states[-1].name)
    gripper = names.index("gripper")
    start = states[-1].position[gripper]
    goal = start + 0.1 if start < 1.0 else start - 0.1
    out["gripper_start_rad"] = start
    out["gripper_goal_rad"] = goal
    sent = 0
    begin = time.time()
    while time.time() - begin < 1.5:
        # A stream of targets moves as a teleoperation or a servo loop would: 0.1 rad over the first second.
        along = min(1.0, time.time() - begin)
        robot.cmd.write(r.JointState(name=["gripper"], position=[start + (goal - start) * along]))
        sent += 1
        time.sleep(0.01)
    stopped = time.time()
    reached = [s.position[gripper] for s in robot.joint_states.take(N=1000)]
    out["targets_sent"] = sent
    out["gripper_reached_rad"] = reached[-1] if reached else None
    out["after_stopping"] = diagnosed(robot, "safe", 2.0)
    out["safe_after_s"] = time.time() - stopped
    robot.recover.write(r.Empty())
    out["after_recover"] = diagnosed(robot, "active", 3.0)
    print(json.dumps(out))
    return 0


def faults(args):
    dp = DomainParticipant(args.domain)
    robot = Robot(dp, args.namespace)
    out = {"matched": wait_for(robot.matched, 15)}
    if not out["matched"]:
        print(json.dumps(out))
        return 1
    states = robot.joint_states.take(N=1000)
    while not states:
        time.sleep(0.01)
        states = robot.joint_states.take(N=1000)
    names = list(states[-1].name)
    here = list(states[-1].position)
    # A flood: a short trajectory every millisecond for `flood_s`, each from where the robot is to 0.2 rad of pan.
    sent = 0
    start = time.time()
    period = 1.0 / args.flood_hz
    next_t = start
    while time.time() - start < args.flood_s:
        amplitude = 0.2 * math.sin(2 * math.pi * 0.5 * (time.time() - start))
        msg = r.JointTrajectory(
            joint_names=[names[0]],
            points=[
                r.JointTrajectoryPoint(positions=[here[0] + amplitude], time_from_start=r.Duration(0, 100_000_000)),
            ],
        )
        robot.trajectory.write(msg)
        sent += 1
        next_t += period
        delay = next_t - time.time()
        if delay > 0:
            time.sleep(delay)
    out["flood_sent"] = sent
    out["flood_rate_hz"] = sent / (time.time() - start)
    # Malformed samples from raw writers with the right type names.
    raw_t = DataWriter(
        dp, Topic(dp, topic_name(args.namespace, "joint_trajectory"), RawTrajectory, qos=r.qos()), qos=r.qos()
    )
    raw_c = DataWriter(dp, Topic(dp, topic_name(args.namespace, "cmd"), RawJointState, qos=r.qos()), qos=r.qos())
    wait_for(
        lambda: raw_t.get_publication_matched_status().current_count > 0
        and raw_c.get_publication_matched_status().current_count > 0,
        10,
    )
    payloads = malformed_payloads(args.seed, args.malformed)
    for payload in payloads:
        # The sequence's count is the message's header.stamp.sec; the bytes follow.
        raw_t.write(RawTrajectory(data=list(payload)))
        raw_c.write(RawJointState(data=list(payload)))
        time.sleep(0.005)
    out["malformed_sent"] = 2 * len(payloads)
    time.sleep(0.5)
    print(json.dumps(out))
    return 0


def subscribe(args):
    """A reliable joint_states subscriber with a deep history that never takes anything: the writer must not wait
    for it. Says `ready` once matched, then waits to be killed."""
    dp = DomainParticipant(args.domain)
    reader = DataReader(
        dp, Topic(dp, topic_name(args.namespace, "joint_states"), r.JointState, qos=r.qos()), qos=r.qos(depth=1000)
    )
    wait_for(lambda: reader.get_subscription_matched_status().current_count > 0, 15)
    print(json.dumps({"ready": True}), flush=True)
    while True:
        time.sleep(1)


def fleet(args):
    """Every robot on the domain by its diagnostics and joint_states (discovered by topic name)."""
    dp = DomainParticipant(args.domain)
    found = {}
    readers = {}
    end = time.time() + args.seconds
    pubs = BuiltinDataReader(dp, BuiltinTopicDcpsPublication)
    while time.time() < end:
        for p in pubs.take(N=256):
            name = getattr(p, "topic_name", "") or ""
            if name.endswith("/diagnostics") and p.type_name == "diagnostic_msgs::msg::dds_::DiagnosticArray_":
                ns = name[len("rt/") : -len("/diagnostics")]
                if ns not in readers:
                    readers[ns] = (
                        DataReader(dp, Topic(dp, name, r.DiagnosticArray, qos=r.qos()), qos=r.qos()),
                        DataReader(
                            dp, Topic(dp, topic_name(ns, "joint_states"), r.JointState, qos=r.qos()), qos=r.qos()
                        ),
                    )
        for ns, (diag, js) in readers.items():
            entry = found.setdefault(ns, {"joint_states": 0})
            for d in diag.take(N=100):
                if d.status:
                    entry["state"] = {kv.key: kv.value for kv in d.status[0].values}.get("state")
            entry["joint_states"] += len(js.take(N=1000))
        if len(found) >= args.count and all("state" in v for v in found.values()):
            break
        time.sleep(0.05)
    print(json.dumps({"robots": found}))
    return 0


def latency(args):
    """joint_states: its stamp (the wall clock of the tick it reports) to its arrival here, woken by a waitset as a
    ROS 2 executor is; and a one-point trajectory every 20 ms (the robot reports when its tick took each one)."""
    dp = DomainParticipant(args.domain)
    robot = Robot(dp, args.namespace)
    if not wait_for(robot.matched, 15):
        print(json.dumps({"matched": False}))
        return 1
    waitset = WaitSet(dp)
    waitset.attach(ReadCondition(robot.joint_states, SampleState.Any | ViewState.Any | InstanceState.Any))
    delays = []
    end = time.time() + args.seconds
    last = None
    sent = 0
    next_trajectory = time.time()
    while time.time() < end:
        waitset.wait(duration(milliseconds=5))
        for s in robot.joint_states.take(N=1000):
            arrival = now_ns()
            delays.append(arrival - (s.header.stamp.sec * 1_000_000_000 + s.header.stamp.nanosec))
            last = s
        if last is not None and time.time() >= next_trajectory:
            robot.trajectory.write(
                r.JointTrajectory(
                    joint_names=[last.name[0]],
                    points=[r.JointTrajectoryPoint(positions=[last.position[0]], time_from_start=r.Duration(0, 0))],
                )
            )
            sent += 1
            next_trajectory += 0.02
    delays.sort()
    pick = lambda p: delays[min(len(delays) - 1, int(len(delays) * p))] * 1e-3 if delays else None
    out = {"samples": len(delays), "p50_us": pick(0.5), "p99_us": pick(0.99), "max_us": pick(1.0)}
    out["trajectories_sent"] = sent
    print(json.dumps(out))
    return 0


def watch(args):
    """joint_states of several robots (--namespaces a,b,…) taken for --seconds: samples and rate per robot."""
    dp = DomainParticipant(args.domain)
    readers = {
        ns: DataReader(dp, Topic(dp, topic_name(ns, "joint_states"), r.JointState, qos=r.qos()), qos=r.qos())
        for ns in args.namespaces.split(",")
    }
    waitset = WaitSet(dp)
    for reader in readers.values():
        waitset.attach(ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Any))
    print(json.dumps({"ready": True}), flush=True)
    counts = {ns: 0 for ns in readers}
    first = {}
    last = {}
    end = time.time() + args.seconds
    while time.time() < end:
        waitset.wait(duration(milliseconds=5))
        for ns, reader in readers.items():
            n = len(reader.take(N=1000))
            if n:
                first.setdefault(ns, time.time())
                last[ns] = time.time()
            counts[ns] += n
    # Between the first and the last arrival: the robots may start after this peer and end before it.
    rates = {
        ns: (counts[ns] - 1) / (last[ns] - first[ns]) if last.get(ns, 0) > first.get(ns, 0) else 0 for ns in readers
    }
    print(json.dumps({"samples": counts, "rate_hz": rates}))
    return 0


def servos(args):
    """The robot's diagnostics for --seconds: every message's per-servo statuses (their `tick`, to see the readings
    move on), the newest in full."""
    dp = DomainParticipant(args.domain)
    robot = Robot(dp, args.namespace)
    out = {"ticks": []}
    end = time.time() + args.seconds
    while time.time() < end:
        taken = robot.diagnostics.take(N=100)
        note_servo_diagnostics(out, taken)
        for d in taken:
            if len(d.status) > 1:
                out["ticks"].append(int({kv.key: kv.value for kv in d.status[1].values}.get("tick", "-1")))
        time.sleep(0.05)
    print(json.dumps(out))
    return 0


def main():
    exit_with_parent()
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["scenario", "faults", "subscribe", "fleet", "latency", "watch", "targets", "servos"])
    parser.add_argument("--namespace", default="")
    parser.add_argument("--namespaces", default="")
    parser.add_argument("--domain", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--flood-hz", type=float, default=1000)
    parser.add_argument("--flood-s", type=float, default=2)
    parser.add_argument("--malformed", type=int, default=40)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    modes = {"scenario": scenario, "faults": faults, "subscribe": subscribe, "fleet": fleet, "latency": latency}
    modes["watch"] = watch
    modes["targets"] = targets
    modes["servos"] = servos
    return modes[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
