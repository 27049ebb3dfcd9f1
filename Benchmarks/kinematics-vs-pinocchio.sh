#!/bin/sh
# Sinew's kinematics core and Pinocchio, measured side by side in one run on this machine.
# Usage: Benchmarks/kinematics-vs-pinocchio.sh [URDF...]   (default: the UR5 and Panda in Tests/Fixtures/kinematics)
# The Pinocchio side is Benchmarks/pinocchio (its build.sh installs the `pin` wheel in .build/pinocchio-venv and
# compiles pinbench.cpp into .build/pinocchio-bench; first run about 3 min, cached afterwards).
# Prints, per robot, Sinew's and Pinocchio's median ns per call and the ratio Sinew / Pinocchio (< 1: Sinew faster).
set -e
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- Tests/Fixtures/kinematics/ur5_robot.urdf Tests/Fixtures/kinematics/panda.urdf
sh Benchmarks/pinocchio/build.sh
swift build -c release --product sinew >/dev/null
for urdf in "$@"; do
  ours=$(.build/release/sinew bench kinematics "$urdf" --json)
  theirs=$(.build/pinocchio-bench/pinbench "$urdf")
  python3 - "$urdf" "$ours" "$theirs" <<'PY'
import json, sys
urdf, ours, theirs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
pairs = [("FK, all links", "fk_ns", "frames_fk_ns"), ("frame Jacobian", "jacobian_ns", "frame_jacobian_ns"),
         ("RNEA", "rnea_ns", "rnea_ns"), ("CRBA", "crba_ns", "crba_ns"), ("ABA", "aba_ns", "aba_ns")]
print(f"{urdf}: median ns per call")
print(f"  {'':16}{'Sinew':>9}{'Pinocchio':>11}{'ratio':>8}")
out = {"urdf": urdf}
for label, a, b in pairs:
    ratio = ours[a] / theirs[b]
    out[a.replace("_ns", "_ratio")] = round(ratio, 3)
    print(f"  {label:16}{ours[a]:9.1f}{theirs[b]:11.1f}{ratio:8.2f}")
print("  json:", json.dumps({"sinew": ours, "pinocchio": theirs, "ratios": out}))
PY
done
