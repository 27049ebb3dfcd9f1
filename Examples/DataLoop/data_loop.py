"""The data loop closed on the simulated SO-101, end to end: demonstrations → LeRobot dataset → a learned policy →
evaluation beside the demonstrator, without and with domain randomisation. `make data-loop` runs it (and so does
`make test`); it exits 1 when the learned policy succeeds in fewer than 90 % of the held-out episodes.

    python Examples/DataLoop/data_loop.py [--sinew .build/release/sinew] [--out .build/data-loop]

1. `sinew record` — 50 demonstrations of reach by the scripted expert (the cartesian policy, targets drawn from
   seeds 0–49) into a LeRobotDataset v3.0 directory, checked against the format;
2. `train_bc.py` — a 9 → 64 → 64 → 6 MLP trained by behaviour cloning in numpy, exported as safetensors;
3. `sinew sim eval` — the learned policy and the expert on the same 100 held-out seeds (1000–1099), then again
   with every episode's physics randomised (the task's `randomization:` ranges).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
ROBOT = "Hardware/robots/so101/robot.yaml"
TASK = "Hardware/robots/so101/tasks/reach.yaml"


def run(command, **kwargs):
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(command, check=True, cwd=ROOT, **kwargs)


def evaluate(sinew, policy, randomize, episodes, seed, jobs):
    command = [sinew, "sim", "eval", ROBOT, "--task", TASK, "--policy", policy, "--episodes", str(episodes),
               "--seed", str(seed), "--jobs", str(jobs), "--json"]
    if randomize:
        command.append("--randomize")
    result = run(command, stdout=subprocess.PIPE, text=True)
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sinew", default=os.path.join(ROOT, ".build", "release", "sinew"))
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "data-loop"))
    parser.add_argument("--demonstrations", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--required", type=float, default=0.9, help="the learned policy's least success rate")
    args = parser.parse_args()
    start = time.monotonic()
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    dataset = os.path.join(out, "reach-demos")
    policy_dir = os.path.join(out, "policy")
    environment = dict(os.environ, SINEW_PYTHON=sys.executable)

    run([args.sinew, "record", ROBOT, "--task", TASK, "--policy", "cartesian", "--episodes",
         str(args.demonstrations), "--seed", "0", "--dataset", dataset], env=environment)
    run([sys.executable, "-m", "sinew_dataset", "check", dataset],
        env=dict(environment, PYTHONPATH=os.path.join(ROOT, "python")))
    run([sys.executable, os.path.join(HERE, "train_bc.py"), dataset, policy_dir],
        env=dict(environment, OPENBLAS_NUM_THREADS="1"))
    learned = os.path.join(policy_dir, "reach_bc.yaml")

    rows = []
    for randomize in (False, True):
        for name, policy in (("learned (mlp, behaviour cloning)", learned), ("scripted expert (cartesian)", "cartesian")):
            report = evaluate(args.sinew, policy, randomize, args.episodes, 1000, args.jobs)
            rows.append((randomize, name, report))
    print()
    print("reach on the simulated SO-101, %d held-out seeds (1000–%d), %d demonstrations (seeds 0–%d):"
          % (args.episodes, 999 + args.episodes, args.demonstrations, args.demonstrations - 1))
    print("  %-13s %-34s %9s  %-15s %-10s %s" % ("randomisation", "policy", "success", "95 % CI", "time (s)",
                                               "final error (mm)"))
    for randomize, name, report in rows:
        low, high = report["ci95"]
        print("  %-13s %-34s %8.1f%%  %5.1f–%5.1f %%   %-10s %.1f" % (
            "on" if randomize else "off", name, 100 * report["success_rate"], 100 * low, 100 * high,
            "%.2f" % report["time_to_success_s"]["p50"] if report["time_to_success_s"]["p50"] else "—",
            1000 * report["task_final_error"]["p50"]))
    print("  (%.0f s in all)" % (time.monotonic() - start))
    learned_nominal = rows[0][2]["success_rate"]
    if learned_nominal < args.required:
        print("FAILED: the learned policy succeeded in %.1f %% of the episodes, below %.0f %%"
              % (100 * learned_nominal, 100 * args.required))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
