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


def _stats():
    """Statistics as a dataset's would be, in LeRobot's units for the SO-101 (joints −100…100, gripper 0…100):
    demonstrations that stayed within ±0.5 of the middle. The policies' processors normalise with them, so their
    random outputs land near the middle of each joint's range, as a trained policy's land near its data. A random
    diffusion policy draws every step anywhere in that band: with ±10 its steps exceed the joints' velocity limit,
    with ±2 their effort limit, and the guard stops the arm, as it should."""
    middle = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 50.0])
    spread = torch.full((6,), 0.5)
    joints = {"mean": middle, "std": spread / 2, "min": middle - spread, "max": middle + spread}
    image = {key: torch.full((3, 1, 1), value) for key, value in
             (("mean", 0.5), ("std", 0.25), ("min", 0.0), ("max", 1.0))}
    return {"observation.state": joints, "action": dict(joints), IMAGE: image}


STATS = _stats()


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

    # Sized for a CPU: the next chunk must arrive before the one running ends, so a chunk has to last well beyond an
    # inference. With LeRobot's defaults for the SO-101 (10 denoising steps, 8 actions) inference takes 1.4 s on this
    # 2-core machine against 0.27 s of chunk; with 2 steps and 28 actions of a 32-step horizon, ~0.3 s against 0.93 s.
    config = DiffusionConfig(input_features=features_in, output_features=features_out, horizon=32, n_action_steps=28,
                             n_obs_steps=2, num_inference_steps=2, crop_shape=(84, 84),
                             pretrained_backbone_weights=None, device="cpu")
    return DiffusionPolicy(config), 28


class Served:
    """The policy behind the protocol: the state in, a black image added, the chunk out; inference timed."""

    def __init__(self, policy, steps, checkpoint=None):
        adapter = LeRobotPolicy.from_policy(policy.eval(), dataset_stats=STATS)
        if checkpoint:
            # Saved as LeRobot's training saves a checkpoint (the model, then its processors with their statistics)
            # and loaded back from the directory, as `python -m sinew_policy_server --lerobot DIR` loads one.
            policy.save_pretrained(checkpoint)
            adapter.preprocessor.save_pretrained(checkpoint)
            adapter.postprocessor.save_pretrained(checkpoint)
            adapter = LeRobotPolicy(checkpoint)
            assert adapter.preprocessor is not None, "the checkpoint's processors were not loaded"
        self.adapter = adapter
        self.policy = adapter.policy
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
    parser.add_argument("--policies", default="act,diffusion", help="comma-separated: act, diffusion")
    args = parser.parse_args()
    print("note: Sinew has no cameras yet; the policies' image feature gets a black 96x96 image", flush=True)
    results = {}
    for kind in args.policies.split(","):
        policy, steps = build(kind)
        with tempfile.TemporaryDirectory() as scratch:
            # ACT goes through a checkpoint directory, diffusion is served as built.
            served = Served(policy, steps, checkpoint=os.path.join(scratch, "checkpoint") if kind == "act" else None)
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
            command = [args.sinew, "run", robot, "--duration", str(args.seconds), "--json", "--record", record]
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            report = json.loads(run.stdout.strip().split("\n")[-1])
            remote = report.get("remote") or {}
            if report.get("final_state") != "active" or remote.get("chunks_refused"):
                # Why (each refused chunk's reason, the safety events): the end of the run's own report.
                print(run.stderr[-3000:], flush=True)
            times = sorted(served.times)
            results[kind] = {
                "infer_ms_p50": times[len(times) // 2] if times else None,
                "infer_ms_p99": times[int(0.99 * (len(times) - 1))] if times else None,
                "chunks_per_s": remote.get("chunks_received", 0) / args.seconds,
                "chunks_refused": remote.get("chunks_refused"), "last_error": remote.get("last_error"),
                "rms_jerk_rad_s3": rms_jerk(record, 500) if os.path.exists(record) else None,
                "final_state": report.get("final_state"), "safety_events": report.get("safety_events"),
                "tracking_rms_rad": report.get("tracking_rms_rad"),
            }
            print(f"{kind}: {json.dumps(results[kind])}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # The server's daemon thread and PyTorch's own threads at interpreter teardown abort in C++ ("terminate called
    # without an active exception"); the results are printed, so leave without the teardown.
    os._exit(0)
