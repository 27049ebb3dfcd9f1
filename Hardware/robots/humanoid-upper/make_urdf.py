#!/usr/bin/env python3
"""Writes humanoid_upper.urdf: the upper body of a small humanoid, 26 Dynamixel servos on four buses.

Written for Sinew, not derived from another robot's files: a fixed pelvis, a three-axis waist, a three-axis neck
and head, two seven-axis arms and two three-finger hands, sized like a tabletop humanoid (shoulders 0.34 m
apart, 0.68 m from the pelvis's underside to the top of the head, 0.51 m from a shoulder to the fingertips).
Every link is a solid box of its outline with the mass of its servos and frame; its inertia about the centre of
mass is a box's, I_xx = m (b² + c²) / 12 and so on.

Conventions: x forward, y to the robot's left, z up; at zero the arms hang straight down and the head looks
forward. The two arms mirror each other: for both, a positive shoulder_pitch raises the arm forward, a positive
shoulder_roll swings it outward, a positive shoulder_yaw and wrist_yaw turn the hand outward, a positive elbow
and wrist_pitch flex forward, positive fingers close.

Standard library only. Usage (from the repository root):

    python3 Hardware/robots/humanoid-upper/make_urdf.py           # writes humanoid_upper.urdf
    python3 Hardware/robots/humanoid-upper/make_urdf.py --check   # the committed file is what this writes
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "humanoid_upper.urdf")

# Servo data (robot.yaml and the README say the same): XM430-W350 4.1 N·m stall, 4.8 rad/s no load at 12 V;
# XL330-M288 0.52 N·m stall, 10.8 rad/s no load at 5 V. The waist's XM430s drive through 3:1 belt reducers.
XM_EFFORT, XM_SPEED = 4.1, 4.5
XL_EFFORT, XL_SPEED = 0.52, 10.0
WAIST_RATIO = 3.0

HEADER = """<?xml version="1.0"?>
<!--
  humanoid_upper: the upper body of a small humanoid on 26 ROBOTIS Dynamixel servos, for Sinew. Written for this
  project by Hardware/robots/humanoid-upper/make_urdf.py (its docstring has the conventions); not derived from
  another robot's files, no meshes. Masses include the servos (XM430-W350 82 g, XL330-M288 18 g) and plausible
  printed and aluminium frames; inertias are a solid box's of the link's outline. See README.md.
-->
"""


def box_inertia(mass, size):
    a, b, c = size
    return (mass * (b * b + c * c) / 12, mass * (a * a + c * c) / 12, mass * (a * a + b * b) / 12)


def link(name, mass, size, com, comment):
    ixx, iyy, izz = box_inertia(mass, size)
    return (
        f"  <!-- {comment}; box {size[0]:.3f} x {size[1]:.3f} x {size[2]:.3f} m, {mass * 1000:.0f} g. -->\n"
        f'  <link name="{name}">\n'
        "    <inertial>\n"
        f'      <origin xyz="{com[0]:g} {com[1]:g} {com[2]:g}" rpy="0 0 0"/>\n'
        f'      <mass value="{mass:g}"/>\n'
        f'      <inertia ixx="{ixx:.4e}" ixy="0" ixz="0" iyy="{iyy:.4e}" iyz="0" izz="{izz:.4e}"/>\n'
        "    </inertial>\n"
        "  </link>\n\n")


def joint(name, parent, child, origin, axis, lower, upper, effort, speed, damping=0.02, friction=0.02):
    return (
        f'  <joint name="{name}" type="revolute">\n'
        f'    <origin xyz="{origin[0]:g} {origin[1]:g} {origin[2]:g}" rpy="0 0 0"/>\n'
        f'    <parent link="{parent}"/>\n'
        f'    <child link="{child}"/>\n'
        f'    <axis xyz="{axis[0]:g} {axis[1]:g} {axis[2]:g}"/>\n'
        f'    <limit lower="{lower:g}" upper="{upper:g}" velocity="{speed:g}" effort="{effort:g}"/>\n'
        f'    <dynamics damping="{damping:g}" friction="{friction:g}"/>\n'
        "  </joint>\n\n")


def fixed(name, parent, child, origin):
    return (
        f'  <joint name="{name}" type="fixed">\n'
        f'    <origin xyz="{origin[0]:g} {origin[1]:g} {origin[2]:g}" rpy="0 0 0"/>\n'
        f'    <parent link="{parent}"/>\n'
        f'    <child link="{child}"/>\n'
        "  </joint>\n\n")


def arm(side):
    """One arm and hand; `s` is +1 for the left side, -1 for the right (the mirror)."""
    s = 1 if side == "left" else -1
    p = side
    out = ""
    # Shoulder pitch on the chest's side; its axis -y raises the hanging arm forward on both sides.
    out += joint(f"{p}_shoulder_pitch", "chest_link", f"{p}_shoulder_link", (0, 0.17 * s, 0.26), (0, -1, 0),
                 -0.8, 2.8, XM_EFFORT, XM_SPEED)
    out += link(f"{p}_shoulder_link", 0.095, (0.05, 0.045, 0.05), (0, 0.02 * s, 0),
                f"{side} shoulder bracket with the shoulder_roll XM430-W350")
    out += joint(f"{p}_shoulder_roll", f"{p}_shoulder_link", f"{p}_upper_shoulder_link", (0, 0.04 * s, 0), (s, 0, 0),
                 -0.2, 1.8, XM_EFFORT, XM_SPEED)
    out += link(f"{p}_upper_shoulder_link", 0.095, (0.045, 0.045, 0.06), (0, 0, -0.02),
                f"{side} shoulder yoke with the shoulder_yaw XM430-W350")
    out += joint(f"{p}_shoulder_yaw", f"{p}_upper_shoulder_link", f"{p}_upper_arm_link", (0, 0, -0.04), (0, 0, s),
                 -1.5, 1.5, XM_EFFORT, XM_SPEED)
    out += link(f"{p}_upper_arm_link", 0.20, (0.045, 0.05, 0.18), (0, 0, -0.09),
                f"{side} upper arm (0.18 m between axes) with the elbow XM430-W350")
    out += joint(f"{p}_elbow", f"{p}_upper_arm_link", f"{p}_forearm_link", (0, 0, -0.18), (0, -1, 0),
                 0.0, 2.4, XM_EFFORT, XM_SPEED)
    out += link(f"{p}_forearm_link", 0.10, (0.04, 0.04, 0.16), (0, 0, -0.08),
                f"{side} forearm (0.16 m) with the wrist_yaw XL330-M288")
    out += joint(f"{p}_wrist_yaw", f"{p}_forearm_link", f"{p}_wrist_yaw_link", (0, 0, -0.16), (0, 0, s),
                 -1.5, 1.5, XL_EFFORT, XL_SPEED)
    out += link(f"{p}_wrist_yaw_link", 0.03, (0.03, 0.03, 0.03), (0, 0, -0.01),
                f"{side} wrist bracket with the wrist_pitch XL330-M288")
    out += joint(f"{p}_wrist_pitch", f"{p}_wrist_yaw_link", f"{p}_wrist_pitch_link", (0, 0, -0.025), (0, -1, 0),
                 -1.2, 1.2, XL_EFFORT, XL_SPEED)
    out += link(f"{p}_wrist_pitch_link", 0.03, (0.03, 0.03, 0.03), (0, 0, -0.01),
                f"{side} wrist bracket with the wrist_roll XL330-M288")
    out += joint(f"{p}_wrist_roll", f"{p}_wrist_pitch_link", f"{p}_hand_link", (0, 0, -0.025), (0, 0, s),
                 -2.5, 2.5, XL_EFFORT, XL_SPEED)
    out += link(f"{p}_hand_link", 0.09, (0.03, 0.07, 0.08), (0, 0, -0.04),
                f"{side} palm with the three finger XL330-M288s")
    out += fixed(f"{p}_hand_frame_joint", f"{p}_hand_link", f"{p}_hand_frame", (0.02, 0, -0.07))
    out += "  <!-- The point grasped objects sit at, between the fingertips. -->\n"
    out += f'  <link name="{p}_hand_frame"/>\n\n'
    # Fingers: the thumb on the inner side closes across the palm, index and the other fingers curl forward.
    out += joint(f"{p}_thumb", f"{p}_hand_link", f"{p}_thumb_link", (0.02, -0.03 * s, -0.03), (0, 0, -s),
                 0.0, 1.2, XL_EFFORT, XL_SPEED, 0.005, 0.005)
    out += link(f"{p}_thumb_link", 0.012, (0.015, 0.04, 0.015), (0, 0.02 * s, 0), f"{side} thumb")
    out += joint(f"{p}_index", f"{p}_hand_link", f"{p}_index_link", (0.01, -0.015 * s, -0.08), (0, -1, 0),
                 0.0, 1.4, XL_EFFORT, XL_SPEED, 0.005, 0.005)
    out += link(f"{p}_index_link", 0.012, (0.015, 0.015, 0.05), (0, 0, -0.025), f"{side} index finger")
    out += joint(f"{p}_fingers", f"{p}_hand_link", f"{p}_fingers_link", (0.01, 0.015 * s, -0.08), (0, -1, 0),
                 0.0, 1.4, XL_EFFORT, XL_SPEED, 0.005, 0.005)
    out += link(f"{p}_fingers_link", 0.02, (0.015, 0.035, 0.05), (0, 0, -0.025),
                f"{side} middle, ring and little fingers")
    return out


def build():
    text = HEADER + '<robot name="humanoid_upper">\n\n'
    text += link("pelvis", 1.5, (0.20, 0.25, 0.10), (0, 0, 0.05), "Pelvis on its stand (the fixed root)")
    text += joint("waist_yaw", "pelvis", "waist_yaw_link", (0, 0, 0.10), (0, 0, 1), -1.2, 1.2,
                  XM_EFFORT * WAIST_RATIO, XM_SPEED / WAIST_RATIO, 0.1, 0.1)
    text += link("waist_yaw_link", 0.12, (0.08, 0.08, 0.04), (0, 0, 0.02), "Waist turntable with the waist_pitch XM430-W350")
    text += joint("waist_pitch", "waist_yaw_link", "waist_pitch_link", (0, 0, 0.04), (0, 1, 0), -0.3, 0.6,
                  XM_EFFORT * WAIST_RATIO, XM_SPEED / WAIST_RATIO, 0.1, 0.1)
    text += link("waist_pitch_link", 0.12, (0.08, 0.08, 0.04), (0, 0, 0.02), "Waist yoke with the waist_roll XM430-W350")
    text += joint("waist_roll", "waist_pitch_link", "chest_link", (0, 0, 0.04), (1, 0, 0), -0.35, 0.35,
                  XM_EFFORT * WAIST_RATIO, XM_SPEED / WAIST_RATIO, 0.1, 0.1)
    text += link("chest_link", 1.2, (0.16, 0.28, 0.30), (0, 0, 0.15),
                 "Chest with the shoulder_pitch XM430-W350s, the adapters and the head's neck_yaw XL330-M288")
    text += joint("neck_yaw", "chest_link", "neck_yaw_link", (0, 0, 0.30), (0, 0, 1), -1.2, 1.2, XL_EFFORT, XL_SPEED)
    text += link("neck_yaw_link", 0.03, (0.03, 0.03, 0.03), (0, 0, 0.015), "Neck bracket with the neck_pitch XL330-M288")
    text += joint("neck_pitch", "neck_yaw_link", "neck_pitch_link", (0, 0, 0.03), (0, 1, 0), -0.6, 0.6,
                  XL_EFFORT, XL_SPEED)
    text += link("neck_pitch_link", 0.03, (0.03, 0.03, 0.03), (0, 0, 0.015), "Neck bracket with the neck_roll XL330-M288")
    text += joint("neck_roll", "neck_pitch_link", "head_link", (0, 0, 0.03), (1, 0, 0), -0.4, 0.4, XL_EFFORT, XL_SPEED)
    text += link("head_link", 0.25, (0.12, 0.12, 0.14), (0.01, 0, 0.07), "Head with a camera")
    text += fixed("camera_joint", "head_link", "camera_frame", (0.06, 0, 0.08))
    text += "  <!-- The camera's optical centre (x forward). -->\n"
    text += '  <link name="camera_frame"/>\n\n'
    text += arm("left")
    text += arm("right")
    return text + "</robot>\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file differs")
    args = parser.parse_args()
    text = build()
    if args.check:
        with open(TARGET, encoding="utf-8") as existing:
            if existing.read() != text:
                print(f"{TARGET} differs from what make_urdf.py writes", file=sys.stderr)
                sys.exit(1)
        print(f"{TARGET}: up to date")
        return
    with open(TARGET, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
