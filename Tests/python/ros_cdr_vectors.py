"""Reference CDR bytes of ROS 2 messages, made without ROS and without Cyclone DDS: mcap-ros2-support's serializer (the
ROS 2 CDR encoder Foxglove's MCAP tools use) fed the ROS 2 message definitions. Sinew's idlc-generated types must
serialise the same samples to the same bytes (Tests/SinewROSTests/ROSMessageTests.swift); docs/ros2.md lists them.

Prints one JSON object: vector name → hex (encapsulation header first)."""

import json

from mcap_ros2._dynamic import serialize_dynamic

SEP = "=" * 80

TIME = "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec"
DURATION = "MSG: builtin_interfaces/Duration\nint32 sec\nuint32 nanosec"
HEADER = "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id"
VECTOR3 = "MSG: geometry_msgs/Vector3\nfloat64 x\nfloat64 y\nfloat64 z"
QUATERNION = "MSG: geometry_msgs/Quaternion\nfloat64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1"
TRANSFORM = "MSG: geometry_msgs/Transform\nVector3 translation\nQuaternion rotation"
TRANSFORM_STAMPED = (
    "MSG: geometry_msgs/TransformStamped\nstd_msgs/Header header\nstring child_frame_id\nTransform transform"
)
KEY_VALUE = "MSG: diagnostic_msgs/KeyValue\nstring key\nstring value"
STATUS = (
    "MSG: diagnostic_msgs/DiagnosticStatus\nbyte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\nbyte level\n"
    "string name\nstring message\nstring hardware_id\nKeyValue[] values"
)
POINT = (
    "MSG: trajectory_msgs/JointTrajectoryPoint\nfloat64[] positions\nfloat64[] velocities\nfloat64[] accelerations\n"
    "float64[] effort\nbuiltin_interfaces/Duration time_from_start"
)


def definition(main, *dependencies):
    return "\n".join([main] + [f"{SEP}\n{d}" for d in dependencies])


SCHEMAS = {
    "sensor_msgs/msg/JointState": definition(
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort",
        HEADER,
        TIME,
    ),
    "tf2_msgs/msg/TFMessage": definition(
        "geometry_msgs/TransformStamped[] transforms", TRANSFORM_STAMPED, HEADER, TIME, TRANSFORM, VECTOR3, QUATERNION
    ),
    "sensor_msgs/msg/Imu": definition(
        "std_msgs/Header header\ngeometry_msgs/Quaternion orientation\nfloat64[9] orientation_covariance\n"
        "geometry_msgs/Vector3 angular_velocity\nfloat64[9] angular_velocity_covariance\n"
        "geometry_msgs/Vector3 linear_acceleration\nfloat64[9] linear_acceleration_covariance",
        HEADER,
        TIME,
        QUATERNION,
        VECTOR3,
    ),
    "diagnostic_msgs/msg/DiagnosticArray": definition(
        "std_msgs/Header header\nDiagnosticStatus[] status", HEADER, TIME, STATUS, KEY_VALUE
    ),
    "std_msgs/msg/String": "string data",
    "trajectory_msgs/msg/JointTrajectory": definition(
        "std_msgs/Header header\nstring[] joint_names\nJointTrajectoryPoint[] points", HEADER, TIME, POINT, DURATION
    ),
}

# The samples (the Swift test builds the same ones).
VECTORS = {
    "joint_state": (
        "sensor_msgs/msg/JointState",
        {
            "header": {"stamp": {"sec": 1234567890, "nanosec": 500000000}, "frame_id": "base_link"},
            "name": ["shoulder_pan", "gripper"],
            "position": [0.5, -1.25],
            "velocity": [0.0, 2.0],
            "effort": [],
        },
    ),
    "tf_message": (
        "tf2_msgs/msg/TFMessage",
        {
            "transforms": [
                {
                    "header": {"stamp": {"sec": 10, "nanosec": 20}, "frame_id": "base_link"},
                    "child_frame_id": "shoulder_link",
                    "transform": {
                        "translation": {"x": 0.1, "y": 0.2, "z": 0.3},
                        "rotation": {"x": 0.0, "y": 0.0, "z": 0.6, "w": 0.8},
                    },
                }
            ]
        },
    ),
    "imu": (
        "sensor_msgs/msg/Imu",
        {
            "header": {"stamp": {"sec": 7, "nanosec": 8}, "frame_id": "wrist_link"},
            "orientation": {"x": 0.0, "y": 0.6, "z": 0.0, "w": 0.8},
            "orientation_covariance": [0.0] * 9,
            "angular_velocity": {"x": 0.0, "y": 0.0, "z": 0.0},
            "angular_velocity_covariance": [-1.0] + [0.0] * 8,
            "linear_acceleration": {"x": 0.0, "y": 0.0, "z": 0.0},
            "linear_acceleration_covariance": [-1.0] + [0.0] * 8,
        },
    ),
    "diagnostic_array": (
        "diagnostic_msgs/msg/DiagnosticArray",
        {
            "header": {"stamp": {"sec": 5, "nanosec": 6}, "frame_id": ""},
            "status": [
                {
                    "level": 2,
                    "name": "sinew: so101",
                    "message": "safe: emergencyStop",
                    "hardware_id": "so101",
                    "values": [{"key": "state", "value": "safe"}],
                }
            ],
        },
    ),
    "string": ("std_msgs/msg/String", {"data": "<robot name=\"so101\"/>"}),
    "joint_trajectory": (
        "trajectory_msgs/msg/JointTrajectory",
        {
            "header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": ""},
            "joint_names": ["elbow_flex"],
            "points": [
                {
                    "positions": [1.0],
                    "velocities": [0.5],
                    "accelerations": [],
                    "effort": [],
                    "time_from_start": {"sec": 1, "nanosec": 250000000},
                }
            ],
        },
    ),
}


def main():
    out = {}
    for name, (schema, sample) in VECTORS.items():
        encoders = serialize_dynamic(schema, SCHEMAS[schema])
        out[name] = encoders[schema](sample).hex()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
