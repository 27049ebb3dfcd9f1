#!/usr/bin/env python3
"""Writes so101_bimanual.urdf: two SO-101 follower arms (../so101/so101.urdf) side by side on one table.

The arms are the shipped SO-101 description, copied twice with every link and joint name prefixed `left_` or
`right_`, their base links fixed to a `table` link 0.40 m apart (left at y = +0.20 m, right at y = -0.20 m,
both facing +x). Visuals, collisions, materials and transmissions are left out: Sinew reads kinematics and
inertia only, and the meshes were never part of this repository. The numbers of every link and joint are the
SO-101's own, unchanged.

Standard library only. Usage (from the repository root):

    python3 Hardware/robots/so101-bimanual/make_urdf.py           # writes so101_bimanual.urdf
    python3 Hardware/robots/so101-bimanual/make_urdf.py --check   # the committed file is what this writes
"""

import argparse
import os
import sys
import xml.etree.ElementTree as ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "so101", "so101.urdf")
TARGET = os.path.join(HERE, "so101_bimanual.urdf")
ARMS = [("left", 0.20), ("right", -0.20)]

HEADER = """<?xml version="1.0"?>
<!--
  so101_bimanual: two SO-101 follower arms on one table, for Sinew (two Feetech buses, one per arm).
  Written by Hardware/robots/so101-bimanual/make_urdf.py from ../so101/so101.urdf, which comes from the
  example-robot-data package (BSD-3-Clause), packaging the LeRobot SO-101 description generated from its
  Onshape model with onshape-to-robot. Every link and joint of each arm is the SO-101's, renamed with the
  prefix left_ or right_; visuals, collisions, materials and transmissions are left out (no meshes here).

  table        the root link; 0.60 x 0.80 x 0.02 m, 2 kg (fixed to the world: its inertia never moves)
  left_mount   fixed: left_base_link at (0, +0.20, 0) in the table frame, facing +x
  right_mount  fixed: right_base_link at (0, -0.20, 0) in the table frame, facing +x
-->
"""


def build():
    source = ElementTree.parse(SOURCE).getroot()
    robot = ElementTree.Element("robot", {"name": "so101_bimanual"})
    table = ElementTree.SubElement(robot, "link", {"name": "table"})
    inertial = ElementTree.SubElement(table, "inertial")
    ElementTree.SubElement(inertial, "origin", {"xyz": "0 0 -0.01", "rpy": "0 0 0"})
    ElementTree.SubElement(inertial, "mass", {"value": "2.0"})
    # Solid box 0.60 x 0.80 x 0.02 m of 2 kg: I = m (b² + c²) / 12.
    ElementTree.SubElement(
        inertial, "inertia",
        {"ixx": "0.1067", "ixy": "0", "ixz": "0", "iyy": "0.06007", "iyz": "0", "izz": "0.1667"})
    for prefix, y in ARMS:
        mount = ElementTree.SubElement(robot, "joint", {"name": f"{prefix}_mount", "type": "fixed"})
        ElementTree.SubElement(mount, "origin", {"xyz": f"0 {y:g} 0", "rpy": "0 0 0"})
        ElementTree.SubElement(mount, "parent", {"link": "table"})
        ElementTree.SubElement(mount, "child", {"link": f"{prefix}_base_link"})
        for element in source:
            if element.tag == "link":
                link = ElementTree.SubElement(robot, "link", {"name": f"{prefix}_{element.get('name')}"})
                for child in element:
                    if child.tag == "inertial":
                        link.append(child)
            elif element.tag == "joint":
                joint = ElementTree.SubElement(
                    robot, "joint", {"name": f"{prefix}_{element.get('name')}", "type": element.get("type")})
                for child in element:
                    copy = ElementTree.SubElement(joint, child.tag, dict(child.attrib))
                    if child.tag in ("parent", "child"):
                        copy.set("link", f"{prefix}_{child.get('link')}")
                    elif child.tag == "mimic":
                        copy.set("joint", f"{prefix}_{child.get('joint')}")
    ElementTree.indent(robot, space="  ")
    return HEADER + ElementTree.tostring(robot, encoding="unicode") + "\n"


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
