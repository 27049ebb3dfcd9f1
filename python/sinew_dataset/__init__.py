"""LeRobotDataset v3.0 directories for Sinew: the writer `sinew record` and `sinew dataset export` call, a reader,
and a checker of the layout written from LeRobot's published format (python -m sinew_dataset --help)."""
