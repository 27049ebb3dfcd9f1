import ArgumentParser

@main
struct Sinew: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sinew",
        abstract: "Sinew: a real-time control runtime for embodied robots.",
        discussion: """
            Start with `sinew demo`. Point `sinew kinematics` at any URDF to inspect a robot, evaluate its \
            kinematics and dynamics, or solve inverse kinematics; `sinew virtual-bus` serves simulated servos on \
            a pseudo-terminal, `sinew scan` finds servos on a port; `sinew bench` measures what Sinew costs.
            """,
        subcommands: [
            Demo.self, Run.self, Calibrate.self, Kinematics.self, Fusion.self, VirtualBusCommand.self, ScanCommand.self,
            Bench.self,
        ]
    )
}
