"""A stand-in for PyTorch, for LeRobot's compatibility suite only (Tests/SinewCLITests/LeRobotTests.swift).

LeRobot's motor, robot and teleoperator modules import `torch` for type hints and a device helper's signature
(`torch.Tensor` in lerobot_types, `torch.device` in utils/device_utils): they never compute with it. The suite
puts this directory first on PYTHONPATH so those modules import without the real PyTorch (a ~1 GB download);
`make lerobot-torch-check` runs the same suite with the real one. Anything else asked of this module fails
loudly, so a LeRobot version that starts to use PyTorch on these paths is noticed, not papered over.
"""

IS_SINEW_STAND_IN = True


class Tensor:
    pass


class device:  # noqa: N801 (PyTorch's name)
    pass


class dtype:  # noqa: N801 (PyTorch's name)
    pass


def __getattr__(name):
    raise AttributeError(f"torch.{name}: this is Sinew's PyTorch stand-in for LeRobot's motor modules (see its docstring)")
