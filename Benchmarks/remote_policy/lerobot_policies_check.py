"""A check outside `make test` (`make check-lerobot-policies`): LeRobot's ACT and diffusion policies, built from their
configs with random weights (nothing downloaded), served by `sinew_policy_server` and driving the simulated SO-101
through `sinew run` for 20 s each. Prints, per policy, the inference latency on this machine's CPU, the rate chunks
arrived at, and the jerk of the command the bridge produced (RMS, rad/s^3, from the run's recording), beside the
run's own report (refused chunks, safety events).

Random weights predict noise: the actions are read in LeRobot's normalised units (a few units of -100...100 around
the middle of each joint's range), so the arm twitches about its pose; what is checked is the path — LeRobot's real
models, their pre/post-processing of features, Sinew's protocol, the bridge and the guard — not a task.
Sinew has no cameras yet: the image feature the policies need (ACT and diffusion want one) is filled with a black
96 x 96 image by this script's wrapper, and said so.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from sinew_policy_server.lerobot_policy import LeRobotPolicy  # noqa: E402
from sinew_policy_server.server import PolicyServer  # noqa: E402

from lerobot.configs.types import FeatureType, PolicyFeature  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE = "observation.images.front"


def build(kind: str):
    features_in = {
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(6,)),
        IMAGE: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 96, 96)),
    }
    features_out = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(6,))}
    torch.manual_seed(0)
    if kind == "act":
        from lerobot.policies.act.configuration_act import ACTConfig
        from lerobot.policies.act.modeling_act import ACTPolicy

        config = ACTConfig(input_features=features_in, output_features=features_out, chunk_size=50, n_action_steps=50,
                           pretrained_backbone_weights=None, device="cpu")
        return ACTPolicy(config), 50
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    config = DiffusionConfig(input_features=features_in, output_features=features_out, horizon=16, n_action_steps=8,
                             n_obs_steps=2, num_inference_steps=10, crop_shape=(84, 84),
                             pretrained_backbone_weights=None, device="cpu")
    return DiffusionPolicy(config), 8


class Served:
    """The policy behind the protocol: the state in, a black image added, the chunk out; inference timed."""

    def __init__(self, policy, steps):
        self.policy = policy.eval()
        self.adapter = LeRobotPolicy.from_policy(self.policy)
        self.steps = steps
        self.times = []
        self.metadata = {"policy": policy.config.type, "weights": "random"}

    def reset(self):
        self.policy.reset()

    def infer(self, observation):
        start = time.perf_counter()
        # Through the server's own LeRobot adapter (as `python -m sinew_policy_server --lerobot` serves a checkpoint).
        observation = dict(observation)
        observation[IMAGE] = np.zeros((96, 96, 3), dtype=np.uint8)
        chunk = self.adapter.infer(observation)["actions"][: self.steps]
        self.times.append((time.perf_counter() - start) * 1000)
        return {"actions": chunk}


def rms_jerk(csv_path: str, rate_hz: float) -> float:
    with open(csv_path, encoding="utf-8") as f:
        header = f.readline().strip().split(",")
        columns = [i for i, name in enumerate(header) if name.endswith(".command_rad")]
        rows = []
        for line in f:
            fields = line.strip().split(",")
            if len(fields) == len(header):
                rows.append([float(fields[c]) for c in columns])
    commands = np.asarray(rows)
    jerk = np.diff(commands, n=3, axis=0) * rate_hz ** 3
    return float(math.sqrt(np.mean(jerk ** 2))) if jerk.size else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sinew", default=os.path.join(REPO, ".build", "release", "sinew"))
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    print("note: Sinew has no cameras yet; the policies' image feature gets a black 96x96 image", flush=True)
    results = {}
    for kind in ("act", "diffusion"):
        policy, steps = build(kind)
        served = Served(policy, steps)
        with tempfile.TemporaryDirectory() as scratch:
            token = os.urandom(16).hex()
            with open(os.path.join(scratch, "token"), "w", encoding="utf-8") as f:
                f.write(token + "\n")
            ports = []
            server = PolicyServer(served, "127.0.0.1", 0, token)
            thread = threading.Thread(target=server.serve_forever,
                                      kwargs={"ready": lambda s: ports.append(next(iter(s.sockets)).getsockname()[1])},
                                      daemon=True)
            thread.start()
            while not ports:
                time.sleep(0.05)
            step_s = 1 / 30
            with open(os.path.join(REPO, "Hardware", "robots", "so101", "robot.yaml"), encoding="utf-8") as f:
                lines = f.read().split("\n")
            start = lines.index("policy:")
            end = lines.index("", start)
            lines[start:end] = [
                "policy:", "  type: remote", f"  url: ws://127.0.0.1:{ports[0]}", "  token_file: token",
                "  prompt: pick up the cube",
                "  observation: {state_key: observation.state, units: lerobot, prompt_key: task}",
                "  action: {key: actions, units: lerobot}", "  gripper_joints: [gripper]",
                f"  chunk: {{steps: {steps}, step_s: {step_s}, request_when_remaining: 0.5}}",
                "  bridge: {mode: temporal_ensemble}", "  timeout_s: 5",
            ]
            text = "\n".join(lines).replace("model: so101.urdf", f"model: {REPO}/Hardware/robots/so101/so101.urdf")
            robot = os.path.join(scratch, "robot.yaml")
            with open(robot, "w", encoding="utf-8") as f:
                f.write(text)
            record = os.path.join(scratch, "run.csv")
            run = subprocess.run([args.sinew, "run", robot, "--duration", str(args.seconds), "--json", "--record", record],
                                 capture_output=True, text=True, check=False)
            report = json.loads(run.stdout.strip().split("\n")[-1])
            remote = report.get("remote") or {}
            times = sorted(served.times)
            results[kind] = {
                "infer_ms_p50": times[len(times) // 2] if times else None,
                "infer_ms_p99": times[int(0.99 * (len(times) - 1))] if times else None,
                "chunks_per_s": remote.get("chunks_received", 0) / args.seconds,
                "chunks_refused": remote.get("chunks_refused"),
                "rms_jerk_rad_s3": rms_jerk(record, 500) if os.path.exists(record) else None,
                "final_state": report.get("final_state"), "safety_events": report.get("safety_events"),
                "tracking_rms_rad": report.get("tracking_rms_rad"),
            }
            print(f"{kind}: {json.dumps(results[kind])}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
