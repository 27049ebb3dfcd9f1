"""Sinew on ROS 2's DDS wire, measured on this machine (`make bench-ros`; figures in docs/ros2.md). Not a test: it
prints figures, and each comparison's two sides come from the same run.

1. Latency: one simulated SO-101 (`sinew run --follow-ros`, joint_states at 500 Hz) and a ROS 2 peer in another
   process (Tests/python/ros_check.py latency, PyPI cyclonedds woken by a waitset):
   - tick state → subscriber: a joint_states sample's stamp (the wall clock of the tick it reports) to its arrival in
     the peer;
   - trajectory point → tick: a JointTrajectory's source timestamp (when the peer wrote it) to the tick that took it
     from the policy's triple buffer (the robot measures it: ros.command_latency_p50_us/p99_us of its report).
2. Four robots at 500 Hz: four `sinew run` processes, rounds alternating without DDS and with DDS (joint_states at
   500 Hz each, tf, diagnostics, and a peer subscribed to all four joint_states); each robot's wake-up lateness p99
   from its own report. Rounds alternate so a machine that gets busier mid-run loads both sides alike.

Everything stays on loopback (multicast off, unicast discovery to 127.0.0.1) on a domain of its own.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER = os.path.join(ROOT, "Tests/python/ros_check.py")
LOOPBACK = (
    '<CycloneDDS><Domain id="any"><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    '<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex><Peers><Peer address="127.0.0.1"/></Peers>'
    "</Discovery></Domain></CycloneDDS>"
)


def robot_yaml(directory, ros_lines):
    """The shipped SO-101 (simulated) with its e-stop file off and `ros_lines` under `ros:`."""
    with open(os.path.join(ROOT, "Hardware/robots/so101/robot.yaml")) as f:
        text = f.read()
    text = text.replace("model: so101.urdf", f"model: {ROOT}/Hardware/robots/so101/so101.urdf")
    text = text.replace("    file: /tmp/sinew-so101.estop    # `touch` it to stop the arm", "    required: false")
    if ros_lines:
        text += "\nros:\n" + "".join(f"  {line}\n" for line in ros_lines)
    path = os.path.join(directory, "robot-%d.yaml" % len(os.listdir(directory)))
    with open(path, "w") as f:
        f.write(text)
    return path


def environment():
    env = dict(os.environ)
    env["CYCLONEDDS_URI"] = LOOPBACK
    env["SINEW_EXIT_WITH_PARENT"] = "1"  # every child ends with this script
    return env


def start(arguments, directory, name):
    out = open(os.path.join(directory, name + ".out"), "w")
    err = open(os.path.join(directory, name + ".err"), "w")
    return subprocess.Popen(arguments, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=environment())


def last_json(directory, name):
    with open(os.path.join(directory, name + ".out")) as f:
        lines = [line for line in f.read().splitlines() if line.startswith("{")]
    if not lines:
        with open(os.path.join(directory, name + ".err")) as f:
            sys.exit(f"{name} printed no JSON report:\n{f.read()}")
    return json.loads(lines[-1])


def latency(args, directory):
    ros = ["enabled: true", "namespace: bench", f"domain_id: {args.domain}", "joint_states_rate_hz: 500"]
    ros += ["interface: lo", "peers: [127.0.0.1]", "multicast: false"]
    robot = robot_yaml(directory, ros)
    sinew = start(
        [args.sinew, "run", robot, "--follow-ros", "--duration", str(args.seconds + 6), "--json"],
        directory,
        "lat-sinew",
    )
    peer = start(
        [args.python, PEER, "latency", "--namespace", "bench", "--domain", str(args.domain)]
        + ["--seconds", str(args.seconds)],
        directory,
        "lat-peer",
    )
    peer.wait()
    sinew.wait()
    p = last_json(directory, "lat-peer")
    s = last_json(directory, "lat-sinew")
    r = s.get("ros", {})
    print(f"1. latency, one robot at 500 Hz, {args.seconds:.0f} s, loopback (robot ended {s.get('final_state')})")
    print(
        f"   tick state -> subscriber (joint_states stamp -> arrival in the peer): p50 {p['p50_us']:.0f} us, "
        f"p99 {p['p99_us']:.0f} us, max {p['max_us']:.0f} us over {p['samples']} samples"
    )
    print(
        "   trajectory point -> tick that uses it (source timestamp -> tick): "
        f"p50 {r.get('command_latency_p50_us'):.0f} us, p99 {r.get('command_latency_p99_us'):.0f} us "
        f"over {r.get('trajectories_accepted')} trajectories"
        f" ({p['trajectories_sent']} sent)"
    )
    print(
        f"   the robot's loop meanwhile: {s.get('achieved_hz', 0):.1f} Hz, wake-up lateness p99 "
        f"{s.get('wake_p99_us', 0):.0f} us, overruns {s.get('overruns')}"
    )
    return {"state_to_subscriber": p, "trajectory_to_tick": r, "loop": s}


def fleet_round(args, directory, with_dds, k):
    names = [f"so101_{i}" for i in range(4)]
    if with_dds:
        ros = [f"domain_id: {args.domain}", "joint_states_rate_hz: 500"]
        ros += ["interface: lo", "peers: [127.0.0.1]", "multicast: false"]
        robot = robot_yaml(directory, ros)
    else:
        robot = robot_yaml(directory, [])
    tag = ("dds" if with_dds else "plain") + str(k)
    watcher = None
    if with_dds:
        watcher = start(
            [args.python, PEER, "watch", "--namespaces", ",".join(names), "--domain", str(args.domain)]
            + ["--seconds", str(args.round_seconds + 4)],
            directory,
            f"{tag}-watch",
        )
        time.sleep(1.0)  # the peer is up before the robots, so it hears them from their first tick
    robots = []
    for name in names:
        arguments = [args.sinew, "run", robot, "--duration", str(args.round_seconds), "--json"]
        if with_dds:
            arguments += ["--ros", "--ros-namespace", name]
        robots.append(start(arguments, directory, f"{tag}-{name}"))
    for process in robots:
        process.wait()
    reports = [last_json(directory, f"{tag}-{name}") for name in names]
    heard = None
    if watcher is not None:
        watcher.wait(timeout=args.round_seconds + 30)
        heard = last_json(directory, f"{tag}-watch")["rate_hz"]
    return reports, heard


def fleet(args, directory):
    rows = {False: [], True: []}
    for k in range(args.rounds):
        for with_dds in (False, True):
            reports, heard = fleet_round(args, directory, with_dds, k)
            rows[with_dds].append(reports)
            p99 = [r.get("wake_p99_us", 0) for r in reports]
            hz = [r.get("achieved_hz", 0) for r in reports]
            published = [(r.get("ros") or {}).get("published", {}).get("joint_states", 0) for r in reports]
            print(
                f"   round {k + 1} {'with DDS   ' if with_dds else 'without DDS'}: wake p99 "
                + " ".join(f"{v:6.1f}" for v in p99)
                + f" us; loop {min(hz):.1f}-{max(hz):.1f} Hz; overruns {[r.get('overruns') for r in reports]}"
                + (f"; joint_states published {published}" if with_dds else "")
                + (f", heard by the peer at {', '.join(f'{v:.0f}' for v in heard.values())} Hz" if heard else "")
            )
    summary = {}
    for with_dds in (False, True):
        p99 = [r.get("wake_p99_us", 0) for reports in rows[with_dds] for r in reports]
        summary["with_dds" if with_dds else "without_dds"] = {
            "median_of_robot_p99_us": statistics.median(p99),
            "max_of_robot_p99_us": max(p99),
            "overruns": sum(r.get("overruns", 0) for reports in rows[with_dds] for r in reports),
        }
    a = summary["without_dds"]["median_of_robot_p99_us"]
    b = summary["with_dds"]["median_of_robot_p99_us"]
    print(
        f"   wake-up lateness p99, median over {4 * args.rounds} robot runs: without DDS {a:.1f} us, with DDS "
        f"{b:.1f} us ({(b - a) / a * 100:+.1f} %; goal: no more than +10 %)"
    )
    without, with_ = summary["without_dds"], summary["with_dds"]
    print(
        f"   worst robot's p99: without DDS {without['max_of_robot_p99_us']:.1f} us, with DDS "
        f"{with_['max_of_robot_p99_us']:.1f} us; overruns in all: without {without['overruns']}, "
        f"with {with_['overruns']}"
    )
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sinew", default=os.path.join(ROOT, ".build/release/sinew"))
    parser.add_argument("--python", default=os.path.join(ROOT, ".build/pyenv/bin/python"))
    parser.add_argument("--domain", type=int, default=150 + os.getpid() % 50)
    parser.add_argument("--seconds", type=float, default=20, help="the latency phase's measurement, s")
    parser.add_argument("--round-seconds", type=float, default=15, help="each four-robot round, s")
    parser.add_argument("--rounds", type=int, default=2, help="four-robot rounds of each kind, alternating")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    with tempfile.TemporaryDirectory(prefix="sinew-bench-ros-") as directory:
        print(f"sinew bench ros: {os.cpu_count()} CPUs, domain {args.domain}, {time.strftime('%Y-%m-%d %H:%M')}")
        figures = {"latency": latency(args, directory)}
        print(
            f"2. four simulated SO-101s at 500 Hz, {args.rounds} rounds of each kind, {args.round_seconds:.0f} s each"
        )
        figures["fleet"] = fleet(args, directory)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
