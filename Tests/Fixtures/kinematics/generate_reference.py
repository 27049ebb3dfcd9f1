#!/usr/bin/env python3
"""Reference values for Sinew's kinematics tests, computed with Pinocchio (PyPI package `pin`).

For each URDF, writes <robot>.pinocchio.json beside it (or in --out): random joint configurations and, for
each, the world pose of every link, the Jacobian of the deepest link, the gravity torques and the mass
matrix. README.md in this folder describes the layout.

    make reference-kinematics                  # all URDFs in this folder, with the venv the Makefile makes
    .build/pinocchio-venv/bin/python Tests/Fixtures/kinematics/generate_reference.py [--out DIR] [URDF ...]
    .build/pinocchio-venv/bin/python Tests/Fixtures/kinematics/generate_reference.py --check [JSON ...]

--check recomputes every value for the joint configurations already stored in the JSON files (default:
all in this folder) and reports, per robot, the largest difference from the stored values, and whether
the file would come out byte for byte the same; it fails when a difference exceeds --tolerance or the
layout differs.
"""

import argparse
import json
import math
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

try:
    import numpy as np
    import pinocchio as pin
except ImportError as error:  # pragma: no cover - a message for a user without the venv
    sys.exit(
        f"{error}. This script needs Pinocchio's Python package (pip: pin); "
        "`make reference-kinematics` (or `sh Benchmarks/pinocchio/build.sh --venv`) installs it in "
        ".build/pinocchio-venv."
    )

HERE = Path(__file__).resolve().parent
SAMPLES = 20
DIGITS = 12  # values are rounded to 1e-12
GRAVITY = [0, 0, -9.81]  # Pinocchio's default, written as in the files
JACOBIAN_CONVENTION = "LOCAL_WORLD_ALIGNED, rows [vx,vy,vz,wx,wy,wz]"


def rounded(x):
    # NumPy's rounding (scale, round half to even, scale back), as the existing files were made; it can differ
    # from Python's correctly rounded round() in the last digit when a value lies half way.
    return float(np.round(np.float64(x), DIGITS))


class Robot:
    """A URDF as Pinocchio models it (fixed base, every non-fixed joint its own degree of freedom, mimic
    joints included), with the URDF's joint limits and mimic relations, which that model does not keep."""

    def __init__(self, urdf: Path):
        self.urdf = urdf
        self.model = pin.buildModelFromUrdf(str(urdf), False)  # mimic=False: mimic joints stay independent
        self.data = self.model.createData()
        self.joint_names = list(self.model.names)[1:]  # Pinocchio's order: depth first from the root
        self.link_frames = [(f.name, i) for i, f in enumerate(self.model.frames) if f.type == pin.FrameType.BODY]
        root = ET.parse(urdf).getroot()
        self.urdf_joints = {j.get("name"): j for j in root.findall("joint")}
        self.mimic = {}
        for name in self.joint_names:
            m = self.urdf_joints[name].find("mimic")
            if m is not None:
                self.mimic[name] = [m.get("joint"), float(m.get("multiplier", 1)), float(m.get("offset", 0))]
        for j in self.model.joints[1:]:
            if j.nv != 1 or j.nq not in (1, 2):
                raise SystemExit(f"{urdf}: joint {j.shortname()} is not revolute, continuous or prismatic")
        self.jacobian_frame = self.deepest_link()

    def deepest_link(self) -> str:
        """The child link of the moving joint with the most moving joints between it and the root (itself
        included), the first in joint order on a tie; as Sinew's RobotModel.deepestLink."""
        best, best_depth = 0, 0
        for j in range(1, self.model.njoints):
            depth, k = 0, j
            while k != 0:
                depth, k = depth + 1, self.model.parents[k]
            if depth > best_depth:
                best, best_depth = j, depth
        return next(f.name for f in self.model.frames if f.parentJoint == best and f.type == pin.FrameType.BODY)

    def sampling_range(self, name):
        """Where a joint's value is drawn: its URDF limits; [-pi, pi] for a continuous joint or a revolute
        one whose limits give no range (lower >= upper); [-1, 1] m for such a prismatic joint."""
        joint = self.urdf_joints[name]
        limit = joint.find("limit")
        lower = float(limit.get("lower", 0)) if limit is not None else 0.0
        upper = float(limit.get("upper", 0)) if limit is not None else 0.0
        if joint.get("type") == "continuous" or lower >= upper:
            return (-1.0, 1.0) if joint.get("type") == "prismatic" else (-math.pi, math.pi)
        return lower, upper

    def random_joints(self, rng) -> dict:
        """One configuration: each independent joint uniform in its range, in joint order; then each mimic
        joint set to multiplier * master + offset."""
        values = {name: rng.uniform(*self.sampling_range(name)) for name in self.joint_names if name not in self.mimic}

        def value(name, seen=()):
            if name in values:
                return values[name]
            if name in seen:
                raise SystemExit(f"{self.urdf}: mimic joints form a cycle through {name}")
            master, multiplier, offset = self.mimic[name]
            return multiplier * value(master, seen + (name,)) + offset

        return {name: float(value(name)) for name in self.joint_names}

    def configuration(self, joints: dict):
        q = np.zeros(self.model.nq)
        for name in self.joint_names:
            j = self.model.joints[self.model.getJointId(name)]
            x = joints[name]
            if j.nq == 1:
                q[j.idx_q] = x
            else:  # a continuous joint: (cos, sin) of its angle
                q[j.idx_q], q[j.idx_q + 1] = math.cos(x), math.sin(x)
        return q

    def sample(self, joints: dict) -> dict:
        model, data = self.model, self.data
        q = self.configuration(joints)
        zero = np.zeros(model.nv)
        pin.computeJointJacobians(model, data, q)  # forward kinematics and every joint's Jacobian
        pin.updateFramePlacements(model, data)
        poses = {name: [[rounded(x) for x in row] for row in data.oMf[i].homogeneous] for name, i in self.link_frames}
        J = pin.getFrameJacobian(model, data, model.getFrameId(self.jacobian_frame), pin.LOCAL_WORLD_ALIGNED)
        tau = pin.rnea(model, data, q, zero, zero)  # holds q still under gravity
        M = np.array(pin.crba(model, data, q))
        M = np.triu(M) + np.triu(M, 1).T  # CRBA fills the upper triangle
        column = {name: model.joints[model.getJointId(name)].idx_v for name in self.joint_names}
        return {
            "joints": dict(joints),
            "link_poses": poses,
            "jacobian": {name: [rounded(x) for x in J[:, column[name]]] for name in self.joint_names},
            "gravity_torque": {name: rounded(tau[column[name]]) for name in self.joint_names},
            "mass_matrix": {
                "order": list(self.joint_names),
                "rows": [[rounded(M[column[a], column[b]]) for b in self.joint_names] for a in self.joint_names],
            },
        }

    def document(self, configurations) -> dict:
        return {
            "urdf": self.urdf.name,
            "reference": f"pinocchio {pin.__version__}",
            "jacobian_frame": self.jacobian_frame,
            "jacobian_convention": JACOBIAN_CONVENTION,
            "gravity": GRAVITY,
            "mimic": self.mimic,
            "samples": [self.sample(joints) for joints in configurations],
        }


def text(document) -> str:
    return json.dumps(document, separators=(",", ":"))


def generate(urdfs, out: Path, samples: int, seed: int):
    out.mkdir(parents=True, exist_ok=True)
    for urdf in urdfs:
        robot = Robot(urdf)
        # One stream per robot, so adding a URDF leaves the others' configurations as they were.
        rng = np.random.default_rng([seed, zlib.crc32(urdf.stem.encode())])
        path = out / f"{urdf.stem}.pinocchio.json"
        path.write_text(text(robot.document([robot.random_joints(rng) for _ in range(samples)])))
        print(f"{path}: {samples} configurations, {robot.model.nv} joints, jacobian of {robot.jacobian_frame}")


def numbers(x, path=""):
    """(path, value) of every number in a JSON value, in order."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from numbers(v, f"{path}/{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from numbers(v, f"{path}/{i}")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield path, float(x)


def shape(x):
    """A JSON value with every number replaced by 0: equal shapes mean the same keys in the same order."""
    if isinstance(x, dict):
        return [(k, shape(v)) for k, v in x.items()]
    if isinstance(x, list):
        return [shape(v) for v in x]
    return 0 if isinstance(x, (int, float)) and not isinstance(x, bool) else x


def check(paths, tolerance: float) -> bool:
    quantities = ["link_poses", "jacobian", "gravity_torque", "mass_matrix"]
    print(f"{'robot':18}" + "".join(f"{q:>16}" for q in quantities) + "   same bytes")
    ok = True
    for path in paths:
        raw = path.read_text()
        stored = json.loads(raw)
        robot = Robot(path.parent / stored["urdf"])
        stored_joints = [s["joints"] for s in stored["samples"]]
        ours = robot.document(stored_joints)
        problems = []
        for key in ("urdf", "jacobian_frame", "jacobian_convention", "gravity", "mimic"):
            if ours[key] != stored[key]:
                problems.append(f"{key}: stored {stored[key]!r}, computed {ours[key]!r}")
        if stored["reference"] != ours["reference"]:
            print(f"  note: {path.name} was made by {stored['reference']}, this is {ours['reference']}")
        if shape(ours) != shape(stored) and not problems:
            problems.append("layout differs (keys, their order or list lengths)")
        # The stored configurations follow the sampling rule: within range, mimic joints from their master.
        for joints in stored_joints:
            for name, x in joints.items():
                lo, hi = robot.sampling_range(name)
                if name in robot.mimic:
                    master, multiplier, offset = robot.mimic[name]
                    if abs(x - (multiplier * joints[master] + offset)) > 1e-15:
                        problems.append(f"{name} = {x} is not {multiplier} * {master} + {offset}")
                elif not lo <= x <= hi:
                    problems.append(f"{name} = {x} outside [{lo}, {hi}]")
        worst = {}
        for q in quantities:
            a = list(numbers([s[q] for s in ours["samples"]]))
            b = list(numbers([s[q] for s in stored["samples"]]))
            worst[q] = max((abs(x - y) for (_, x), (_, y) in zip(a, b)), default=0.0) if len(a) == len(b) else math.inf
            if worst[q] > tolerance:
                problems.append(f"{q} differs by {worst[q]:.3g} (tolerance {tolerance:g})")
        same = "yes" if text(ours) == raw else "no"
        robot_name = path.name.removesuffix(".pinocchio.json")
        print(f"{robot_name:18}" + "".join(f"{worst[q]:16.3g}" for q in quantities) + f"   {same}")
        for p in dict.fromkeys(problems):
            print(f"  {path.name}: {p}")
        ok = ok and not problems
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "files", nargs="*", type=Path, help="URDFs (to generate) or JSON files (--check); default: all in this folder"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the JSON files (default: this folder)")
    parser.add_argument("--samples", type=int, default=SAMPLES, help=f"configurations per robot (default {SAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random configurations (default 0)")
    parser.add_argument("--check", action="store_true", help="recompute the stored configurations and compare")
    parser.add_argument(
        "--tolerance", type=float, default=1e-9, help="largest difference --check accepts (default 1e-9)"
    )
    args = parser.parse_args()
    if args.check:
        paths = args.files or sorted(HERE.glob("*.pinocchio.json"))
        sys.exit(0 if check(paths, args.tolerance) else 1)
    generate(args.files or sorted(HERE.glob("*.urdf")), args.out, args.samples, args.seed)


if __name__ == "__main__":
    main()
