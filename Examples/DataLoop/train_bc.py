"""Behaviour cloning on a Sinew reach dataset, in numpy: a small MLP from (joint positions, target) to the joint
targets the demonstrator commanded a second later (its goal, once the reach is done), exported as safetensors for
Sinew's `mlp` policy, which moves toward them at no more than `max_speed_rad_s`.

    python train_bc.py DATASET OUT_DIR [--horizon-frames 30] [--steps 3000] [--seed 0]

Each frame is also copied with its joints moved by a little noise and the same label (DART-style augmentation, so
the network steers back to the demonstrations from beside them).

Reads the LeRobotDataset v3.0 directory (pyarrow), turns its joint units back into radians (meta/sinew.json says
how), trains with Adam on the mean-squared error, and writes OUT_DIR/reach_bc.safetensors (the layers as a PyTorch
nn.Sequential's state_dict names them, `layers.0.weight` …, with LeRobot-style normalisation statistics
`observation.state.mean`/`std` and `action.mean`/`std`) and OUT_DIR/reach_bc.yaml, the policy file
`sinew sim eval --policy` reads.
"""

import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from sinew_dataset import lerobot_v3  # noqa: E402


def load(dataset, horizon, delta, noise_rad=0.0, copies=1, seed=0):
    info, frames, _, episodes = lerobot_v3.read_dataset(dataset)
    with open(os.path.join(dataset, "meta", "sinew.json")) as f:
        notes = json.load(f)
    scale = np.array([j["rad_per_unit"] for j in notes["joints"]])
    offset = np.array([j["rad_at_zero"] for j in notes["joints"]])
    state = frames["observation.state"].astype(np.float64) * scale + offset
    action = frames["action"].astype(np.float64) * scale + offset
    target = frames["observation.environment_state"].astype(np.float64)
    inputs, outputs = [], []
    rng = np.random.default_rng(seed)
    for start, stop in zip(episodes.column("dataset_from_index").to_pylist(),
                           episodes.column("dataset_to_index").to_pylist()):
        for k in range(start, stop):
            # What the demonstrator commanded `horizon` frames later (its last command past the end): a target far
            # enough ahead that following it moves the arm, converging on the goal's joints.
            ahead = min(k + horizon, stop - 1)
            for copy in range(copies):
                # Copies of the frame with the joints moved a little, labelled with the same command: the network
                # learns to steer back to the demonstrated path from beside it, not only to follow it (the states a
                # learned policy visits are never exactly the demonstrator's).
                q = state[k] + (rng.normal(0, noise_rad, state[k].shape) if copy > 0 else 0)
                inputs.append(np.concatenate([q, target[k]]))
                outputs.append(action[ahead] - q if delta else action[ahead])
    names = [j["name"] for j in notes["joints"]]
    return np.array(inputs), np.array(outputs), names, info


def train(x, y, hidden, steps, seed, batch=1024, learning_rate=3e-3):
    """Adam on mini-batches, cosine learning-rate decay, float32 (the float64 statistics are kept for export)."""
    rng = np.random.default_rng(seed)
    x_mean, x_std = x.mean(axis=0), x.std(axis=0) + 1e-6
    y_mean, y_std = y.mean(axis=0), y.std(axis=0) + 1e-6
    xn_all = ((x - x_mean) / x_std).astype(np.float32)
    yn_all = ((y - y_mean) / y_std).astype(np.float32)
    sizes = [x.shape[1], hidden, hidden, y.shape[1]]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append([rng.normal(0, np.sqrt(2.0 / fan_in), (fan_out, fan_in)).astype(np.float32),
                       np.zeros(fan_out, dtype=np.float32)])
    moments = [[np.zeros_like(p) for p in layer] for layer in params]
    squares = [[np.zeros_like(p) for p in layer] for layer in params]
    beta1, beta2 = 0.9, 0.999
    for step in range(1, steps + 1):
        rate = learning_rate * 0.5 * (1 + np.cos(np.pi * step / steps))
        rows = rng.integers(0, len(xn_all), size=min(batch, len(xn_all)))
        xn, yn = xn_all[rows], yn_all[rows]
        activations = [xn]
        for i, (w, b) in enumerate(params):
            z = activations[-1] @ w.T + b
            activations.append(np.maximum(z, 0) if i < len(params) - 1 else z)
        error = activations[-1] - yn
        grad = 2 * error / len(xn)
        for i in reversed(range(len(params))):
            w, b = params[i]
            gw, gb = grad.T @ activations[i], grad.sum(axis=0)
            if i > 0:
                grad = (grad @ w) * (activations[i] > 0)
            for j, g in enumerate((gw, gb)):
                moments[i][j] = beta1 * moments[i][j] + (1 - beta1) * g
                squares[i][j] = beta2 * squares[i][j] + (1 - beta2) * g * g
                m_hat = moments[i][j] / (1 - beta1 ** step)
                v_hat = squares[i][j] / (1 - beta2 ** step)
                params[i][j] -= rate * m_hat / (np.sqrt(v_hat) + 1e-8)
    h = xn_all
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        h = np.maximum(h, 0) if i < len(params) - 1 else h
    loss = float(np.mean((h - yn_all) ** 2))
    return params, (x_mean, x_std, y_mean, y_std), loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("out_dir")
    parser.add_argument("--horizon-frames", type=int, default=30)
    parser.add_argument("--delta", action="store_true", help="predict changes from the joints, not targets")
    parser.add_argument("--noise-rad", type=float, default=0.02, help="joint noise of the augmented copies")
    parser.add_argument("--copies", type=int, default=8, help="copies of each frame (the first without noise)")
    parser.add_argument("--rate-hz", type=float, default=50, help="the policy's inference rate in Sinew")
    parser.add_argument("--max-speed", type=float, default=1.0, help="the policy's slew limit in Sinew, rad/s")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    x, y, joints, info = load(args.dataset, args.horizon_frames, args.delta, args.noise_rad, args.copies, args.seed)
    params, (x_mean, x_std, y_mean, y_std), loss = train(x, y, args.hidden, args.steps, args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    tensors = {}
    for i, (w, b) in enumerate(params):
        tensors[f"layers.{2 * i}.weight"] = w.astype(np.float32)
        tensors[f"layers.{2 * i}.bias"] = b.astype(np.float32)
    tensors.update({
        "observation.state.mean": x_mean.astype(np.float32), "observation.state.std": x_std.astype(np.float32),
        "action.mean": y_mean.astype(np.float32), "action.std": y_std.astype(np.float32),
    })
    model = os.path.join(args.out_dir, "reach_bc.safetensors")
    save_file(tensors, model, metadata={
        "activation": "relu", "observation_normalization": "MEAN_STD", "action_normalization": "MEAN_STD",
        "trained_on": os.path.abspath(args.dataset)})
    with open(os.path.join(args.out_dir, "reach_bc.yaml"), "w") as f:
        f.write("# Trained by Examples/DataLoop/train_bc.py on %s (%d frames).\n" % (args.dataset, len(x)))
        f.write("policy:\n  type: mlp\n  file: reach_bc.safetensors\n  rate_hz: %g\n" % args.rate_hz)
        f.write("  observation: [{joint_positions: all}, {environment_state: %d}]\n" % (x.shape[1] - len(joints)))
        f.write("  action: {mode: %s}\n" % ("delta" if args.delta else "absolute"))
        f.write("  max_speed_rad_s: %g\n" % args.max_speed)
    print(json.dumps({"model": model, "samples": len(x), "train_mse_normalised": loss,
                      "inputs": x.shape[1], "outputs": y.shape[1], "hidden": args.hidden}))


if __name__ == "__main__":
    main()
