"""Drives LeRobot itself, unmodified, against Sinew's virtual buses: the compatibility suite's sessions.

Run by Tests/SinewCLITests/LeRobotTests.swift (and Benchmarks/lerobot/measure.sh) with the Python of
`make lerobot-env`; prints progress lines and, last, one line `RESULT {json}`. Every session ends on its own: a
deadline (--timeout) and a watch on its parent (a test that dies takes its sessions with it).

  calibrate  --arm so101|koch --role follower|leader --link PATH --hand FILE --calibration-dir DIR --id ID
             [--track SECONDS]
      Prints `ready` once LeRobot is imported, waits for the virtual bus at PATH (served by `sinew virtual-bus
      --robot ... --hand FILE --link-dir ...`), connects (handshake on), and lets LeRobot's interactive calibration
      run: its prompts are answered from a pipe on standard input, timed to the hand file's phases — "middle of its
      range" while the hand holds the arm at the middle, Enter to stop recording once the hand has taken every
      joint through its range. Then LeRobot configures the arm (torque on: the hand lets go). A follower with
      --track then measures get_observation / send_action: goals at the middle and ±20° (gripper 30/70) of each
      joint, the position reached, and the rate of back-to-back get_observation calls.
  teleop     --arm ... --leader-link PATH --follower-link PATH --calibration-dir DIR --seconds S
      LeRobot's teleoperation loop (leader.get_action(), follower.send_action()) at 50 Hz for S seconds, both arms
      calibrated by `calibrate`; the follower's observation is compared with the leader's action.
  setup      --arm so101|koch --port PATH [--scan]
      A lone factory servo (Feetech at 250 kbit/s, set by pyserial as a custom rate; Dynamixel at 57600):
      scan_port finds it at that rate only (Feetech, or Dynamixel with --scan: its scan takes ~20 s), setup_motor
      finds it, gives it LeRobot's ID and 1 Mbit/s, and a broadcast ping at 1 Mbit/s finds it there.
  connect    --arm ... --port PATH --calibration-dir DIR --id ID --tries N
      N connects (handshake, calibration from the file, configure) and disconnects; counts the ones that work
      (Benchmarks/lerobot: the --fault drop=P figures).
  rate       --arm ... --port PATH --calibration-dir DIR --id ID --seconds S
      Back to back for S seconds each: get_observation, then get_observation and send_action alternating (a control
      cycle; send_action alone gets no reply, so a loop of it only measures how fast the pty takes bytes).

`torch`: LeRobot's motor and robot modules import it for type hints only; the suite puts Sinew's stand-in
(Tests/python/torch_stub) first on PYTHONPATH unless the real PyTorch is asked for (make lerobot-torch-check).
"""

import argparse
import io
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

# ---------------------------------------------------------------------------------------------------------------
# Sessions end with their parent and at their deadline.


def watch_parent(timeout_s):
    parent = os.getppid()
    deadline = time.monotonic() + timeout_s

    def run():
        while True:
            time.sleep(0.25)
            if os.getppid() != parent:
                os._exit(3)
            if time.monotonic() > deadline:
                sys.__stdout__.write(f"session timed out after {timeout_s} s\n")
                sys.__stdout__.flush()
                os._exit(4)

    threading.Thread(target=run, daemon=True).start()


def say(text):
    sys.__stdout__.write(text + "\n")
    sys.__stdout__.flush()


# ---------------------------------------------------------------------------------------------------------------
# LeRobot's robots and teleoperators, by arm and role.


def make_device(arm, role, port, calibration_dir, device_id):
    calibration_dir = Path(calibration_dir)
    if arm == "so101" and role == "follower":
        from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

        return SO101Follower(SO101FollowerConfig(port=port, id=device_id, calibration_dir=calibration_dir))
    if arm == "so101" and role == "leader":
        from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig

        return SO101Leader(SO101LeaderConfig(port=port, id=device_id, calibration_dir=calibration_dir))
    if arm == "koch" and role == "follower":
        from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig

        return KochFollower(KochFollowerConfig(port=port, id=device_id, calibration_dir=calibration_dir))
    if arm == "koch" and role == "leader":
        from lerobot.teleoperators.koch_leader import KochLeader, KochLeaderConfig

        return KochLeader(KochLeaderConfig(port=port, id=device_id, calibration_dir=calibration_dir))
    raise SystemExit(f"unknown arm/role {arm}/{role}")


def import_lerobot(arm):
    """Imports what the session needs before it says `ready` (the imports take a second or two)."""
    import lerobot.motors  # noqa: F401

    if arm == "so101":
        import lerobot.robots.so_follower  # noqa: F401
        import lerobot.teleoperators.so_leader  # noqa: F401
    else:
        import lerobot.robots.koch_follower  # noqa: F401
        import lerobot.teleoperators.koch_leader  # noqa: F401
    import torch

    return "stand-in" if getattr(torch, "IS_SINEW_STAND_IN", False) else f"PyTorch {torch.__version__}"


def wait_for(path, seconds=90):
    end = time.monotonic() + seconds
    while not os.path.lexists(path):
        if time.monotonic() > end:
            raise SystemExit(f"{path} did not appear within {seconds} s")
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------------------------
# The hand file's phases, and the person answering LeRobot's prompts.


class HandPhases:
    """When the hand holds the middle pose and when its sweep is over, from the motion file (s into its loop)."""

    def __init__(self, path):
        rows = []
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            if not line or line.startswith("#") or line.startswith("t_s"):
                continue
            fields = [float(v) for v in line.split(",")]
            rows.append((fields[0], fields[1:]))
        t0, first = rows[0]
        moving = [t - t0 for t, q in rows if max(abs(a - b) for a, b in zip(q, first)) > 1e-6]
        self.period = rows[-1][0] - t0
        self.hold_end = moving[0]
        self.sweep_end = moving[-1]


class Person:
    """Answers LeRobot's prompts through a pipe that replaces standard input, as a person at the keyboard would,
    at moments chosen from the hand's phases (the hand's time starts when the virtual bus's link appeared)."""

    MIDDLE = "middle of its range of motion"
    RECORDING = "Press ENTER to stop"
    USE_FILE = "Press ENTER to use provided calibration file"

    def __init__(self, phases, hand_start):
        self.phases = phases
        self.hand_start = hand_start
        read_end, self.write_end = os.pipe()
        sys.stdin = os.fdopen(read_end, "r")
        self.answers = []
        self.seen = ""
        self.recording_started = None
        self.lock = threading.Lock()
        sys.stdout = self

    # A stand-in for sys.stdout: the text goes on to the real one and is watched for prompts.
    def write(self, text):
        sys.__stdout__.write(text)
        with self.lock:
            self.seen += text
            for prompt, handler in ((self.MIDDLE, self.answer_middle), (self.RECORDING, self.answer_recording),
                                    (self.USE_FILE, self.answer_now)):
                if prompt in self.seen:
                    self.seen = ""
                    threading.Thread(target=handler, args=(prompt,), daemon=True).start()
        return len(text)

    def flush(self):
        sys.__stdout__.flush()

    def isatty(self):
        return False

    def phase(self):
        return (time.time() - self.hand_start) % self.phases.period

    def press_enter(self, prompt, at):
        time.sleep(max(0.0, at - time.time()))
        os.write(self.write_end, b"\n")
        self.answers.append({"prompt": prompt, "hand_phase_s": round(self.phase(), 3)})

    def answer_now(self, prompt):
        self.press_enter(prompt, time.time())

    def answer_middle(self, prompt):
        # While the hand holds the middle pose (with margins); otherwise at the next loop's hold.
        phase = self.phase()
        early, late = 0.3, self.phases.hold_end - 0.4
        wait = 0.0 if early <= phase <= late else (self.phases.period - phase + early) % self.phases.period
        self.press_enter(prompt, time.time() + wait)

    def answer_recording(self, prompt):
        # Once the hand has gone through a whole sweep since recording started.
        phase = self.phase()
        done = self.phases.sweep_end + 0.3
        wait = done - phase if phase <= self.phases.hold_end else self.phases.period - phase + done
        self.press_enter(prompt, time.time() + wait)


# ---------------------------------------------------------------------------------------------------------------


def calibration_json(device):
    return {name: {"id": c.id, "drive_mode": c.drive_mode, "homing_offset": c.homing_offset,
                   "range_min": c.range_min, "range_max": c.range_max} for name, c in device.calibration.items()}


def track(robot, seconds):
    """Goals at the middle and ±20° (gripper 30 and 70 %) of each joint in turn, the position reached after 0.6 s;
    then back-to-back get_observation calls for `seconds`."""
    names = list(robot.bus.motors)
    middle = {f"{n}.pos": (50.0 if n == "gripper" else 0.0) for n in names}
    robot.send_action(middle)
    time.sleep(0.8)
    errors = []
    for name in names:
        for offset in (20.0, -20.0):
            goal = dict(middle)
            goal[f"{name}.pos"] += offset
            robot.send_action(goal)
            time.sleep(0.6)
            observed = robot.get_observation()
            errors.append({"joint": name, "goal": goal[f"{name}.pos"],
                           "reached": round(observed[f"{name}.pos"], 3),
                           "others": round(max(abs(observed[f"{n}.pos"] - goal[f"{n}.pos"]) for n in names), 3)})
        robot.send_action(middle)
        time.sleep(0.2)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        robot.get_observation()
        count += 1
    return errors, count / (time.perf_counter() - start)


def command_calibrate(args):
    backend = import_lerobot(args.arm)
    say("ready")
    wait_for(args.link)
    hand_start = os.lstat(args.link).st_mtime
    person = Person(HandPhases(args.hand), hand_start)
    device = make_device(args.arm, args.role, args.link, args.calibration_dir, args.id)
    started = time.time()
    device.connect()
    result = {"torch": backend, "connect_and_calibrate_s": round(time.time() - started, 2),
              "answers": person.answers, "calibration": calibration_json(device),
              "calibration_file": str(device.calibration_fpath), "is_calibrated": device.is_calibrated}
    if args.track > 0:
        errors, rate = track(device, args.track)
        result["tracking"] = errors
        result["observations_per_s"] = round(rate, 1)
        result["return_delay_time"] = device.bus.sync_read("Return_Delay_Time", normalize=False)
    device.disconnect()
    sys.stdout = sys.__stdout__
    say("RESULT " + json.dumps(result))


def command_teleop(args):
    backend = import_lerobot(args.arm)
    say("ready")
    wait_for(args.leader_link)
    wait_for(args.follower_link)
    leader = make_device(args.arm, "leader", args.leader_link, args.calibration_dir, args.leader_id)
    follower = make_device(args.arm, "follower", args.follower_link, args.calibration_dir, args.follower_id)
    # Calibrated by `calibrate` on these buses: connecting asks nothing (a prompt would block: stdin is closed).
    leader.connect()
    follower.connect()
    period = 1.0 / 50
    samples = []
    start = time.perf_counter()
    next_tick = start
    while time.perf_counter() - start < args.seconds:
        action = leader.get_action()
        follower.send_action(action)
        observation = follower.get_observation()
        samples.append((time.perf_counter() - start, action, observation))
        next_tick += period
        time.sleep(max(0.0, next_tick - time.perf_counter()))
    elapsed = time.perf_counter() - start
    leader.disconnect()
    follower.disconnect()
    # The follower lags its goal by its servos' response, each joint by its own: per joint that moved, compare each
    # observation with the action a fixed number of loop periods before, the lag that fits best (up to 0.3 s); its
    # worst moment allows the lag a loop period either way (the loop's own timing jitters by about that).
    names = [k for k in samples[0][1] if k.endswith(".pos")]
    joints = {}
    for k in names:
        span = max(s[1][k] for s in samples) - min(s[1][k] for s in samples)
        if span < 10:
            continue
        best = None
        for lag in range(1, 16):
            errors = [samples[i][2][k] - samples[i - lag][1][k] for i in range(26, len(samples))]
            rms = (sum(e * e for e in errors) / len(errors)) ** 0.5
            if best is None or rms < best[1]:
                best = (lag, rms)
        lag = best[0]
        worst = max(min(abs(samples[i][2][k] - samples[i - m][1][k]) for m in (lag - 1, lag, lag + 1))
                    for i in range(26, len(samples)))
        joints[k.removesuffix(".pos")] = {"span": round(span, 1), "lag_s": round(lag * period, 3),
                                          "rms_error": round(best[1], 2), "max_error": round(worst, 2)}
    say("RESULT " + json.dumps({"torch": backend, "loops": len(samples), "loop_hz": round(len(samples) / elapsed, 1),
                                "joints": joints}))


def command_setup(args):
    import_lerobot(args.arm)
    from lerobot.motors import Motor, MotorNormMode

    if args.arm == "so101":
        from lerobot.motors.feetech import FeetechMotorsBus as Bus

        motor, number, model = "gripper", 6, "sts3215"
    else:
        from lerobot.motors.dynamixel import DynamixelMotorsBus as Bus

        motor, number, model = "shoulder_lift", 2, "xl430-w250"
    say("ready")
    wait_for(args.port)
    # LeRobot's scan tries every rate it knows (the slow ones take seconds each): the Feetech one, where the
    # virtual bus used to answer at 4800 bit/s too, is run; the Dynamixel one only with --scan.
    before = Bus.scan_port(args.port) if args.arm == "so101" or args.scan else None
    bus = Bus(port=args.port, motors={motor: Motor(number, model, MotorNormMode.RANGE_0_100)})
    bus.setup_motor(motor)
    found = bus.ping(motor)
    baud = bus.get_baudrate()
    after = bus.broadcast_ping()
    bus.port_handler.closePort()
    say("RESULT " + json.dumps({"before": before, "after": after, "model_number": found, "baud": baud}))


def command_connect(args):
    import_lerobot(args.arm)
    say("ready")
    wait_for(args.port)
    answer_every_prompt_with_enter()
    successes, failures = 0, []
    for _ in range(args.tries):
        device = make_device(args.arm, "follower", args.port, args.calibration_dir, args.id)
        try:
            device.connect()
            successes += 1
        except Exception as error:  # noqa: BLE001 (a figure of how often connect fails, and why)
            failures.append(str(error).strip().splitlines()[-1][:200])
        finally:
            try:
                if device.is_connected:
                    device.disconnect()
                else:
                    device.bus.port_handler.closePort()
            except Exception:  # noqa: BLE001
                device.bus.port_handler.closePort()
    say("RESULT " + json.dumps({"tries": args.tries, "successes": successes, "failures": failures}))


def answer_every_prompt_with_enter():
    """Standard input that says "use the calibration file" to every prompt (a fresh bus asks once per connect)."""
    read_end, write_end = os.pipe()
    sys.stdin = os.fdopen(read_end, "r")
    os.write(write_end, b"\n" * 1000)


def command_rate(args):
    import_lerobot(args.arm)
    say("ready")
    wait_for(args.port)
    answer_every_prompt_with_enter()
    robot = make_device(args.arm, "follower", args.port, args.calibration_dir, args.id)
    robot.connect()
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        robot.get_observation()
        count += 1
    rate = count / (time.perf_counter() - start)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        robot.send_action(robot.get_observation())
        count += 1
    cycles = count / (time.perf_counter() - start)
    robot.disconnect()
    say("RESULT " + json.dumps({"observations_per_s": round(rate, 1), "cycles_per_s": round(cycles, 1)}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["calibrate", "teleop", "setup", "connect", "rate"])
    parser.add_argument("--arm", choices=["so101", "koch"], required=True)
    parser.add_argument("--role", choices=["follower", "leader"], default="follower")
    parser.add_argument("--link")
    parser.add_argument("--port")
    parser.add_argument("--hand")
    parser.add_argument("--calibration-dir")
    parser.add_argument("--id", default="sinew")
    parser.add_argument("--leader-id", default="sinew_leader")
    parser.add_argument("--follower-id", default="sinew_follower")
    parser.add_argument("--leader-link")
    parser.add_argument("--follower-link")
    parser.add_argument("--track", type=float, default=0)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--scan", action="store_true")
    parser.add_argument("--timeout", type=float, default=240)
    args = parser.parse_args()
    watch_parent(args.timeout)
    {"calibrate": command_calibrate, "teleop": command_teleop, "setup": command_setup, "connect": command_connect,
     "rate": command_rate}[args.command](args)


if __name__ == "__main__":
    main()
