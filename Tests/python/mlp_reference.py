"""The `mlp` policy's reference, for SinewPolicyTests (MLPReferenceTests): writes models with numpy and the
`safetensors` package and runs the policy's semantics on them in numpy, so Sinew can be checked against it.

    python mlp_reference.py OUTDIR

For every hidden activation (relu, tanh, elu, gelu, gelu_tanh) and both of LeRobot's normalisation modes
(MEAN_STD, MIN_MAX) it writes OUTDIR/<activation>-<mode>.safetensors, then simulates a run of the policy
over a sequence of observations: the observation vector (positions, velocities, previous action, phase),
LeRobot's normalisation, the network in float64 (and again in float32, for information), LeRobot's
unnormalisation, absolute or delta targets, inference every N ticks with the targets held between.
OUTDIR/cases.json holds each case's settings, observations and expected targets.

The cases vary what else may vary: weights stored as F32 or F64, statistics named as LeRobot's processor
writes them (`observation.state.mean`) or as its older model files do
(`normalize_inputs.buffer_observation_state.mean`), in the model file, in a separate file or given in the
settings, and the mode named in the settings, in the file's metadata, or left to be inferred.
"""

import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import save_file

JOINTS = ["a", "b", "c", "d"]
POSITIONS_OF = ["a", "b", "c"]
VELOCITIES_OF = ["c", "d", "a"]
ACTION_JOINTS = ["c", "a", "b"]
PERIOD_S = 0.8
TICK_NS = 2_000_000
TICKS = 60
EPS = 1e-8
ACTIVATIONS = ["relu", "tanh", "elu", "gelu", "gelu_tanh"]
MODES = ["MEAN_STD", "MIN_MAX"]

_erf = np.vectorize(math.erf)


def activate(name, x):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "tanh":
        return np.tanh(x)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    if name == "gelu":
        return 0.5 * x * (1 + _erf(x / math.sqrt(2)).astype(x.dtype))
    if name == "gelu_tanh":
        c = x.dtype.type(math.sqrt(2 / math.pi))
        return 0.5 * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))
    raise ValueError(name)


def normalize(mode, x, a, b):
    if mode == "MEAN_STD":
        return (x - a) / (b + x.dtype.type(EPS))
    d = b - a
    d = np.where(d == 0, x.dtype.type(EPS), d)
    return 2 * (x - a) / d - 1


def unnormalize(mode, y, a, b):
    if mode == "MEAN_STD":
        return y * b + a
    d = b - a
    d = np.where(d == 0, y.dtype.type(EPS), d)
    return (y + 1) / 2 * d + a


def main(out):
    os.makedirs(out, exist_ok=True)
    cases = []
    for n, (activation, mode) in enumerate((a, m) for a in ACTIVATIONS for m in MODES):
        rng = np.random.default_rng(100 + n)
        store = np.float64 if n % 3 == 2 else np.float32
        legacy_names = n % 2 == 1
        sizes = [3 + 3 + 3 + 2, 32, 24, 3]
        tensors = {}
        layers = []
        for k in range(len(sizes) - 1):
            bound = 1.5 / math.sqrt(sizes[k])
            w = rng.uniform(-bound, bound, (sizes[k + 1], sizes[k])).astype(store)
            b = rng.uniform(-bound, bound, sizes[k + 1]).astype(store)
            # nn.Sequential numbering: the activations sit at the odd indices.
            tensors[f"layers.{2 * k}.weight"] = w
            tensors[f"layers.{2 * k}.bias"] = b
            layers.append((w.astype(np.float64), b.astype(np.float64)))

        count_in, count_out = sizes[0], sizes[-1]
        mean_in = rng.uniform(-0.5, 0.5, count_in)
        std_in = rng.uniform(0.2, 2.0, count_in)
        min_in = mean_in - rng.uniform(1.0, 3.0, count_in)
        max_in = mean_in + rng.uniform(1.0, 3.0, count_in)
        mean_out = rng.uniform(-0.3, 0.3, count_out)
        std_out = rng.uniform(0.1, 0.6, count_out)
        min_out = mean_out - rng.uniform(0.5, 1.5, count_out)
        max_out = mean_out + rng.uniform(0.5, 1.5, count_out)
        stats_in = {"mean": mean_in, "std": std_in, "min": min_in, "max": max_in}
        stats_out = {"mean": mean_out, "std": std_out, "min": min_out, "max": max_out}
        # The statistics as stored (float32 files round them).
        stats_in = {k: v.astype(store).astype(np.float64) for k, v in stats_in.items()}
        stats_out = {k: v.astype(store).astype(np.float64) for k, v in stats_out.items()}
        pair = ["mean", "std"] if mode == "MEAN_STD" else ["min", "max"]

        obs_prefix = "normalize_inputs.buffer_observation_state" if legacy_names else "observation.state"
        act_prefix = "unnormalize_outputs.buffer_action" if legacy_names else "action"
        # Where the statistics live: 0 the model file, 1 a separate file, 2 the settings.
        where = n % 3
        # How the mode is known: both pairs in the file with the mode in the metadata, only the one pair
        # (inferred), or named in the settings.
        how = (n // 2) % 3 if where != 2 else 2
        stat_names = ["mean", "std", "min", "max"] if how == 0 else pair
        stats_tensors = {}
        for s in stat_names:
            stats_tensors[f"{obs_prefix}.{s}"] = stats_in[s].astype(store)
            stats_tensors[f"{act_prefix}.{s}"] = stats_out[s].astype(store)
        metadata = {}
        settings_activation = None
        if n % 4 == 3:
            settings_activation = activation
        else:
            metadata["activation"] = activation
        if how == 0:
            metadata["observation_normalization"] = mode
            metadata["action_normalization"] = mode
        stats_file = None
        if where == 0:
            tensors.update(stats_tensors)
        elif where == 1:
            stats_file = f"{activation}-{mode.lower()}.stats.safetensors"
            save_file(stats_tensors, os.path.join(out, stats_file))
        model_file = f"{activation}-{mode.lower()}.safetensors"
        save_file(tensors, os.path.join(out, model_file), metadata=metadata or None)

        def side(feature, stats):
            return {
                "mode": mode if how == 2 else None,
                "feature": feature,
                "stats_file": stats_file,
                "stats": {s: stats[s].tolist() for s in pair} if where == 2 else None,
            }

        feature_in = "observation.state"
        feature_out = "action"
        action_mode = "delta" if n % 2 == 0 else "absolute"
        ticks_per_inference = 1 if n % 3 != 1 else 3

        # The run: observations and the targets expected, in float64 and in float32 math.
        ticks = []
        for k in range(TICKS):
            ticks.append(
                {
                    "time_ns": k * TICK_NS,
                    "q": rng.uniform(-1.5, 1.5, len(JOINTS)).tolist(),
                    "qd": rng.uniform(-3.0, 3.0, len(JOINTS)).tolist(),
                }
            )

        def run(dtype):
            cast = lambda v: np.asarray(v, dtype=np.float64).astype(dtype)
            ws = [(cast(w), cast(b)) for w, b in layers]
            si = {s: cast(v) for s, v in stats_in.items()}
            so = {s: cast(v) for s, v in stats_out.items()}
            q0 = ticks[0]["q"]
            prev = cast([q0[JOINTS.index(j)] for j in ACTION_JOINTS]) if action_mode == "absolute" else cast([0, 0, 0])
            targets = cast([q0[JOINTS.index(j)] for j in ACTION_JOINTS])
            expected = []
            for k, tick in enumerate(ticks):
                if k % ticks_per_inference == 0:
                    q, qd = tick["q"], tick["qd"]
                    t = tick["time_ns"] * 1e-9
                    x = cast(
                        [q[JOINTS.index(j)] for j in POSITIONS_OF]
                        + [qd[JOINTS.index(j)] for j in VELOCITIES_OF]
                        + list(prev.astype(np.float64))
                        + [math.sin(2 * math.pi * t / PERIOD_S), math.cos(2 * math.pi * t / PERIOD_S)]
                    )
                    h = normalize(mode, x, si[pair[0]], si[pair[1]])
                    for i, (w, b) in enumerate(ws):
                        h = w @ h + b
                        if i < len(ws) - 1:
                            h = activate(activation, h)
                    a = unnormalize(mode, h, so[pair[0]], so[pair[1]])
                    here = cast([q[JOINTS.index(j)] for j in ACTION_JOINTS])
                    targets = here + a if action_mode == "delta" else a
                    prev = a
                expected.append(targets.astype(np.float64).tolist())
            return expected

        cases.append(
            {
                "name": f"{activation} {mode} ({np.dtype(store).name}, "
                + ("legacy names" if legacy_names else "processor names")
                + ", stats in "
                + ["the model file", "a stats file", "the settings"][where]
                + ", mode "
                + ["from metadata", "inferred", "in settings"][how]
                + f", {action_mode}, every {ticks_per_inference} ticks)",
                "model": model_file,
                "activation": settings_activation,
                "observation_normalization": side(feature_in, stats_in),
                "action_normalization": side(feature_out, stats_out),
                "action_mode": action_mode,
                "ticks_per_inference": ticks_per_inference,
                "period_s": PERIOD_S,
                "joints": JOINTS,
                "positions_of": POSITIONS_OF,
                "velocities_of": VELOCITIES_OF,
                "action_joints": ACTION_JOINTS,
                "ticks": ticks,
                "expected": run(np.float64),
                "expected_float32": run(np.float32),
            }
        )
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f)
    print(f"{len(cases)} cases written to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: mlp_reference.py OUTDIR")
    main(sys.argv[1])
