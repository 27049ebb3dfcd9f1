"""Sinew's `mlp` policy beside numpy and onnxruntime on the same network, in one run (`make bench-mlp`).

    python compare.py --sinew .build/release/sinew-bench-mlp [--calls 20000] [--json]

The network is issue 11's benchmark: 18 inputs (6 joints' positions, velocities and previous actions) →
256 → 256 → 6, relu, weights drawn with numpy (seeded, PyTorch's nn.Linear default: uniform ±1/√inputs) and
stored as float32. It is written once as a safetensors file (the naming of a PyTorch nn.Sequential's
state_dict, `layers.0.weight` …), which Sinew reads, and once as an ONNX graph (Gemm, Relu, Gemm, Relu, Gemm)
built with the `onnx` package's helper API, which onnxruntime runs.

Every figure is a percentile of single calls, each timed on its own after a warm-up, on inputs cycled from
256 vectors drawn uniformly in [-1, 1]:
- Sinew: MLPNetwork.evaluate through the Swift API (float64 arithmetic), and the whole decide stage
  (MLPPolicy.compute: gathering the observation, the network, the targets), timed by sinew-bench-mlp;
- numpy: the forward pass written as three `W @ x + b` with np.maximum, in float32 and in float64;
- onnxruntime: InferenceSession.run on the float32 graph, one intra-op thread (the tick runs on one core),
  all graph optimisations.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

SIZES = [18, 256, 256, 6]
VARIANTS = 256


def make_weights(seed):
    rng = np.random.default_rng(seed)
    layers = []
    for k in range(len(SIZES) - 1):
        bound = 1 / math.sqrt(SIZES[k])
        w = rng.uniform(-bound, bound, (SIZES[k + 1], SIZES[k])).astype(np.float32)
        b = rng.uniform(-bound, bound, SIZES[k + 1]).astype(np.float32)
        layers.append((w, b))
    return layers


def write_safetensors(layers, path):
    tensors = {}
    for k, (w, b) in enumerate(layers):
        tensors[f"layers.{2 * k}.weight"] = w
        tensors[f"layers.{2 * k}.bias"] = b
    save_file(tensors, path, metadata={"activation": "relu"})


def write_onnx(layers, path):
    nodes, initializers = [], []
    previous = "x"
    for k, (w, b) in enumerate(layers):
        initializers += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(b, f"B{k}")]
        out = "y" if k == len(layers) - 1 else f"h{k}"
        gemm = out if k == len(layers) - 1 else f"g{k}"
        nodes.append(helper.make_node("Gemm", [previous, f"W{k}", f"B{k}"], [gemm], transB=1))
        if k < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [gemm], [out]))
        previous = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, SIZES[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, SIZES[-1]])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # An IR version every onnxruntime of the last few years reads.
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def percentiles(samples_ns):
    s = np.sort(np.asarray(samples_ns, dtype=np.float64)) / 1000.0
    n = len(s)
    return {"p50_us": float(s[n // 2]), "p99_us": float(s[min(n - 1, int(0.99 * n))]), "max_us": float(s[-1])}


def time_calls(call, inputs, calls, warmup):
    for k in range(warmup):
        call(inputs[k % VARIANTS])
    samples = [0] * calls
    clock = time.perf_counter_ns
    for k in range(calls):
        x = inputs[k % VARIANTS]
        start = clock()
        call(x)
        samples[k] = clock() - start
    return percentiles(samples)


def numpy_forward(layers):
    (w0, b0), (w1, b1), (w2, b2) = layers

    def forward(x):
        h = np.maximum(w0 @ x + b0, 0)
        h = np.maximum(w1 @ h + b1, 0)
        return w2 @ h + b2

    return forward


def blas_kernel():
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if info:
            i = info[0]
            kernel = f"{i.get('architecture')}, {i.get('num_threads')} threads"
            return f"{i.get('internal_api')} {i.get('version')} ({kernel})"
    except Exception as error:  # informational only
        return f"unknown ({error})"
    return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sinew", required=True, help="the sinew-bench-mlp executable (release build)")
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per implementation (≥ 10000)")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    layers = make_weights(args.seed)
    rng = np.random.default_rng(args.seed + 1)
    inputs64 = rng.uniform(-1, 1, (VARIANTS, SIZES[0]))
    inputs32 = inputs64.astype(np.float32)

    with tempfile.TemporaryDirectory(prefix="sinew-bench-mlp-") as directory:
        st_path = os.path.join(directory, "mlp.safetensors")
        onnx_path = os.path.join(directory, "mlp.onnx")
        write_safetensors(layers, st_path)
        write_onnx(layers, onnx_path)

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

        layers64 = [(w.astype(np.float64), b.astype(np.float64)) for w, b in layers]
        forward32 = numpy_forward(layers)
        forward64 = numpy_forward(layers64)
        # The three agree on the same network before they are timed.
        ort_inputs = [x.reshape(1, -1) for x in inputs32]
        worst = 0.0
        for k in range(16):
            y = session.run(None, {"x": ort_inputs[k]})[0][0]
            worst = max(worst, float(np.max(np.abs(y - forward64(inputs32[k].astype(np.float64))))))

        if worst > 1e-4:
            sys.exit(f"onnxruntime and numpy disagree on the same network by {worst}: the graph is wrong")

        results = {}
        results["numpy_float32"] = time_calls(forward32, inputs32, args.calls, args.warmup)
        results["numpy_float64"] = time_calls(forward64, inputs32.astype(np.float64), args.calls, args.warmup)
        results["onnxruntime_float32"] = time_calls(
            lambda x: session.run(None, {"x": x}), ort_inputs, args.calls, args.warmup
        )
        sinew = subprocess.run(
            [args.sinew, "--model", st_path, "--calls", str(args.calls)], capture_output=True, text=True
        )
        if sinew.returncode != 0:
            sys.exit(f"sinew-bench-mlp failed ({sinew.returncode}):\n{sinew.stdout}{sinew.stderr}")
        s = json.loads(sinew.stdout)
        for key, prefix in [("sinew_float64", "inference"), ("sinew_decide_float64", "decide")]:
            results[key] = {f"{p}_us": s[f"{prefix}_{p}_us"] for p in ["p50", "p99", "max"]}

    report = {
        "network": "18 → 256 → 256 → 6, relu, float32 weights",
        "calls": args.calls,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "numpy": np.__version__,
        "numpy_blas": blas_kernel(),
        "onnxruntime": ort.__version__,
        "onnxruntime_vs_numpy_float64_max_abs": worst,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"mlp inference, {report['network']}: per call over {args.calls} calls after {args.warmup} warm-up")
    print(f"numpy {report['numpy']} (BLAS: {report['numpy_blas']}), onnxruntime {report['onnxruntime']} (1 thread)")
    print(f"onnxruntime float32 vs numpy float64 on the same inputs: max |difference| {worst:.2e}")
    print(f"{'':44}{'p50 µs':>10}{'p99 µs':>10}{'max µs':>10}")
    rows = [
        ("Sinew MLPNetwork.evaluate (Swift, float64)", "sinew_float64"),
        ("Sinew MLPPolicy.compute (decide stage)", "sinew_decide_float64"),
        ("numpy float32 (W @ x + b, np.maximum)", "numpy_float32"),
        ("numpy float64", "numpy_float64"),
        ("onnxruntime float32 (InferenceSession.run)", "onnxruntime_float32"),
    ]
    for label, key in rows:
        r = results[key]
        print(f"{label:44}{r['p50_us']:10.2f}{r['p99_us']:10.2f}{r['max_us']:10.1f}")
    goal = results["sinew_float64"]["p99_us"]
    print(f"goal: Sinew p99 ≤ 10 µs: {'met' if goal <= 10 else 'NOT met'} ({goal:.2f} µs)")


if __name__ == "__main__":
    main()
