import ArgumentParser
import SinewRuntime

@main
struct Sinew: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sinew",
        abstract: "Sinew: a real-time control runtime for embodied robots.",
        discussion: """
            Start with `sinew demo`. Point `sinew kinematics` at any URDF to inspect a robot, evaluate its \
            kinematics and dynamics, or solve inverse kinematics; `sinew virtual-bus` serves simulated servos on \
            a pseudo-terminal, `sinew scan` finds servos on a port; `sinew bench` measures what Sinew costs.
            Data (servo tables, shipped robots) comes from <prefix>/share/sinew/Hardware of an installation \
            (`make install PREFIX=…`), the Hardware/ folder of the checkout the executable was built in, or \
            $SINEW_HARDWARE_DIR; `sinew --version` says which.
            """,
        version: HardwareDirectory.versionText,
        subcommands: [
            Demo.self, Run.self, Teleop.self, Jog.self, Calibrate.self, Kinematics.self, Fusion.self,
            VirtualBusCommand.self, ScanCommand.self, RecordingCommand.self, Replay.self, Sim.self, Record.self,
            Dataset.self, Fleet.self,
            Bench.self,
        ]
    )

    static func main() {
        // Before anything can write: a closed pipe must give EPIPE, not kill a process driving a robot.
        ShutdownSignals.ignoreBrokenPipes()
        ParentWatch.startIfRequested()
        main(nil)
    }
}
