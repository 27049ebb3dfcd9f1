"""MuJoCo stepping the same arm as Sinew's simulator, for `sinew bench sim` (which runs this and prints it beside its
own figures): simulated seconds per wall-clock second.

    python mujoco_rollout.py URDF --seconds 20 --joints shoulder_pan,shoulder_lift,… --waypoints JSON

The URDF is Sinew's own, with its visual and collision elements stripped (so no mesh is needed and nothing
collides: Sinew's simulator has no contact either), loaded by MuJoCo's URDF importer — the same links, inertias and
joint limits. A position actuator on each joint (kp 20 N·m/rad, kv 0.5 N·m·s/rad: a servo's stiffness) follows
the same waypoints Sinew's trajectory follows, as an open-loop control sequence; timestep 1 ms, the implicit
integrator, one thread, stepped in C by mujoco.rollout (no Python per step). Prints one JSON object.
"""

import argparse
import json
import time
import xml.etree.ElementTree as ElementTree

import mujoco
import numpy as np
from mujoco import rollout


def stripped_urdf(path):
    tree = ElementTree.parse(path)
    root = tree.getroot()
    for link in root.iter("link"):
        for child in list(link):
            if child.tag in ("visual", "collision"):
                link.remove(child)
    # MuJoCo's importer takes compiler settings from a <mujoco> element of the URDF.
    extension = ElementTree.SubElement(root, "mujoco")
    ElementTree.SubElement(extension, "compiler", {"discardvisual": "true", "fusestatic": "false",
                                                   "balanceinertia": "true"})
    return ElementTree.tostring(root, encoding="unicode")


def model_with_actuators(urdf_text, joints, timestep):
    spec = mujoco.MjSpec.from_string(urdf_text)
    spec.option.timestep = timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICIT
    for name in joints:
        actuator = spec.add_actuator()
        actuator.name = name
        actuator.target = name
        actuator.trntype = mujoco.mjtTrn.mjTRN_JOINT
        actuator.set_to_position(kp=20.0, kv=0.5)
    return spec.compile()


def controls(waypoints, joints, steps, timestep, start):
    """Minimum-jerk segments through the waypoints (positions in joint order, durations in s), looped."""
    knots = [np.array(start)] + [np.array(w["positions_rad"]) for w in waypoints]
    durations = [w["duration_s"] for w in waypoints]
    total = sum(durations)
    out = np.empty((steps, len(joints)))
    for k in range(steps):
        t = (k * timestep) % total
        for i, d in enumerate(durations):
            if t <= d or i == len(durations) - 1:
                s = min(t / d, 1.0)
                blend = s * s * s * (10 - 15 * s + 6 * s * s)
                out[k] = knots[i] + (knots[i + 1] - knots[i]) * blend
                break
            t -= d
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urdf")
    parser.add_argument("--joints", required=True)
    parser.add_argument("--waypoints", required=True, help="JSON list of {positions_rad, duration_s}")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--timestep", type=float, default=0.001)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    joints = args.joints.split(",")
    model = model_with_actuators(stripped_urdf(args.urdf), joints, args.timestep)
    data = mujoco.MjData(model)
    waypoints = json.loads(args.waypoints)
    start = waypoints[-1]["positions_rad"]
    for i, name in enumerate(joints):
        data.qpos[model.joint(name).qposadr[0]] = start[i]
    mujoco.mj_forward(model, data)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    initial = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, initial, spec)
    steps = int(round(args.seconds / args.timestep))
    control = controls(waypoints, joints, steps, args.timestep, start)[None, :, :]
    rollout.rollout(model, data, initial[None, :], control[:, :100, :])  # warm up
    walls = []
    for _ in range(args.repeats):
        begin = time.perf_counter()
        state, _ = rollout.rollout(model, data, initial[None, :], control)
        walls.append(time.perf_counter() - begin)
    wall = float(np.median(walls))
    final = state[0, -1]
    print(json.dumps({
        "mujoco_version": mujoco.__version__, "nq": model.nq, "nbody": model.nbody, "nu": model.nu,
        "timestep_s": args.timestep, "integrator": "implicit", "simulated_s": args.seconds, "wall_s": wall,
        "wall_s_runs": walls, "rtf": args.seconds / wall, "steps_per_s": steps / wall,
        "finite": bool(np.all(np.isfinite(final))),
    }))


if __name__ == "__main__":
    main()
