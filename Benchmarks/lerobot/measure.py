"""LeRobot on Sinew's virtual bus, measured beside Sinew's own figures on the same kind of bus (`make bench-lerobot`).

For the SO-101 (Feetech, six STS3215) and the Koch follower (Dynamixel, two XL430-W250 and four XL330-M288), each
served whole by `sinew virtual-bus --robot Hardware/robots/<arm>/robot.yaml` with wire timing on (replies no
earlier than a 1 Mbit/s wire and the servos' Return Delay Time, which LeRobot's configure sets to 0):

- LeRobot's rates (Tests/python/lerobot_session.py `rate`, LeRobot unmodified, after connect and configure):
  back-to-back get_observation() (one SYNC_READ of Present_Position) and get_observation() + send_action() (one
  SYNC_WRITE of Goal_Position, which no servo answers) alternating: a control cycle;
- Sinew's: `sinew bench bus` (its bus master: a cycle is one SYNC_READ of position, velocity and current and one
  SYNC_WRITE of the goals, wire timing on, Return Delay Time 0), and the wire's own limit for that cycle;
- connects under `--fault drop=P` (a reply lost with probability P): LeRobot's robot.connect() (handshake,
  calibration from a file, configure) against `sinew run <arm>/robot.yaml --backend pty --duration 0.3` (configure,
  activation, 0.3 s of the loop), TRIES of each, each on a fresh bus with its own seed (`seed=1`…`seed=TRIES`, the
  same for both), counted.

Usage: python3 Benchmarks/lerobot/measure.py [--tries 20] [--drop 0.01] [--seconds 4]   (--tries 0: rates only)
Needs `make lerobot-env` (.build/lerobot-venv) and a release build of sinew. Prints a Markdown table and, last, one
line `json {...}`. About 4 minutes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SINEW = os.path.join(ROOT, ".build/release/sinew")
PYTHON = os.environ.get("SINEW_LEROBOT_PYTHON", os.path.join(ROOT, ".build/lerobot-venv/bin/python"))
SESSION = os.path.join(ROOT, "Tests/python/lerobot_session.py")
ARMS = {"so101": ("feetech", 6), "koch": ("dynamixel", 6)}


def serve(arm, directory, fault=None):
    arguments = [SINEW, "virtual-bus", "--robot", f"{ROOT}/Hardware/robots/{arm}/robot.yaml", "--link-dir", directory]
    if fault:
        arguments += ["--fault", fault]
    server = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    server.stdout.readline()  # `arm /dev/pts/N`: serving
    return server


def stop(server):
    server.terminate()
    server.wait(timeout=30)


def session(arguments, scratch):
    environment = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "Tests/python/torch_stub"),
                       HF_HOME=os.path.join(scratch, "hf"), PYTHONUNBUFFERED="1")
    output = subprocess.run([PYTHON, SESSION] + arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=environment, timeout=900).stdout
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"session {arguments[0]} failed:\n{output[-3000:]}")


def calibration_file(arm, directory):
    """A LeRobot calibration file for the follower: the whole turn for every joint (the figures do not depend on it)."""
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    calibration = {name: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 4095}
                   for i, name in enumerate(names)}
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "bench.json"), "w") as out:
        json.dump(calibration, out)


def sinew_connects(arm, port, tries):
    successes, failures = 0, []
    for _ in range(tries):
        run = subprocess.run([SINEW, "run", f"{ROOT}/Hardware/robots/{arm}/robot.yaml", "--backend", "pty", "--port",
                              port, "--duration", "0.3", "--json"], capture_output=True, text=True, timeout=120)
        report = {}
        try:
            report = json.loads(run.stdout)
        except json.JSONDecodeError:
            pass
        if run.returncode == 0 and report.get("final_state") == "active":
            successes += 1
        else:
            lines = run.stderr.strip().splitlines()
            failures.append(f"status {run.returncode}: " + (lines[-1][:160] if lines else str(report)[:160]))
    return {"tries": tries, "successes": successes, "failures": failures}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--drop", type=float, default=0.01)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="sinew-bench-lerobot-") as scratch:
        for arm, (protocol, _) in ARMS.items():
            figures = {}
            calibration_file(arm, os.path.join(scratch, "cal", arm))
            links = os.path.join(scratch, arm)
            server = serve(arm, links)
            try:
                figures["lerobot"] = session(["rate", "--arm", arm, "--port", f"{links}/arm", "--calibration-dir",
                                              os.path.join(scratch, "cal", arm), "--id", "bench", "--seconds",
                                              str(args.seconds), "--timeout", "300"], scratch)
            finally:
                stop(server)
            bench = subprocess.run([SINEW, "bench", "bus", "--protocol", protocol, "--json"], capture_output=True,
                                   text=True, timeout=300)
            figures["sinew"] = json.loads(bench.stdout)
            # Every try on a fresh bus (the arm as served: mid-range, holding its pose) with its own sequence of
            # lost replies (seed=try), the same sequences for LeRobot and for Sinew: a try then depends on the
            # faults alone, not on the pose the previous one left (an arm left torque off falls onto its stops).
            totals = {"lerobot_connect": {"tries": 0, "successes": 0, "failures": []},
                      "sinew_connect": {"tries": 0, "successes": 0, "failures": []}}
            for attempt in range(args.tries):
                fault = f"drop={args.drop},seed={attempt + 1}"
                faulty = os.path.join(scratch, f"{arm}-faulty-{attempt}")
                server = serve(arm, faulty, fault=fault)
                try:
                    one = session(["connect", "--arm", arm, "--port", f"{faulty}/arm", "--calibration-dir",
                                   os.path.join(scratch, "cal", arm), "--id", "bench", "--tries", "1", "--timeout",
                                   "300"], scratch)
                finally:
                    stop(server)
                faulty = os.path.join(scratch, f"{arm}-faulty-sinew-{attempt}")
                server = serve(arm, faulty, fault=fault)
                try:
                    two = sinew_connects(arm, f"{faulty}/arm", 1)
                finally:
                    stop(server)
                for key, result in (("lerobot_connect", one), ("sinew_connect", two)):
                    totals[key]["tries"] += result["tries"]
                    totals[key]["successes"] += result["successes"]
                    totals[key]["failures"] += result["failures"]
            figures.update(totals)
            results[arm] = figures

    print(f"| on the virtual bus, wire timing on, 1 Mbit/s | SO-101 (6 × STS3215) | Koch (2 × XL430 + 4 × XL330) |")
    print("|---|---|---|")

    def row(label, value):
        print(f"| {label} | {value(results['so101'])} | {value(results['koch'])} |")

    def limit(read_only):
        # docs/protocols.md §3.2, Return Delay Time 0: LeRobot reads Present_Position and writes Goal_Position
        # (2 bytes each on the STS3215, 4 on the X series) of 6 servos.
        def value(f):
            dynamixel = f["sinew"]["protocol"] == "dynamixel"
            size, n = (4 if dynamixel else 2), 6
            read = (14 + n + n * (11 + size)) if dynamixel else (8 + n + n * (6 + size))
            write = (14 + n * (1 + size)) if dynamixel else (8 + n * (1 + size))
            return f"{1_000_000 / 10 / (read if read_only else read + write):.0f}/s"
        return value

    row("LeRobot get_observation() back to back (one sync read)", lambda f: f"{f['lerobot']['observations_per_s']:.0f}/s")
    row("wire limit for that sync read", limit(True))
    row("LeRobot get_observation() + send_action() (a cycle)", lambda f: f"{f['lerobot']['cycles_per_s']:.0f}/s")
    row("wire limit for that cycle", limit(False))
    row("Sinew bus master, sync read (pos, vel, current) + sync write",
        lambda f: f"{f['sinew']['wire_emulated_cycles_per_s']:.0f}/s")
    row("wire limit for Sinew's cycle", lambda f: f"{f['sinew']['wire_limit_cycles_per_s']:.0f}/s")
    if args.tries == 0:
        print("json " + json.dumps(results))
        return
    row(f"LeRobot robot.connect() under --fault drop={args.drop}",
        lambda f: f"{f['lerobot_connect']['successes']} of {f['lerobot_connect']['tries']}")
    row(f"Sinew configure + activation under --fault drop={args.drop}",
        lambda f: f"{f['sinew_connect']['successes']} of {f['sinew_connect']['tries']}")
    print("json " + json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
