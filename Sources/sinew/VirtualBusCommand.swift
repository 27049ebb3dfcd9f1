import ArgumentParser
import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewRuntime
import SinewSim

struct VirtualBusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "virtual-bus",
        abstract: "Serve simulated servos on a pseudo-terminal that any program opens like a serial port.",
        discussion: """
            The servos answer byte for byte like the real ones (control tables from Hardware/servos, motor and \
            thermal models), so the vendors' SDKs, LeRobot and `sinew scan` work against them unchanged. The \
            first line printed is the pseudo-terminal's path (e.g. /dev/pts/4), for scripts; a description \
            follows. Runs until SIGINT (Ctrl-C) or SIGTERM, then removes the --link and exits 0.

            Models: xl330-m077, xl330-m288, xl430-w250 and xm430-w350 (dynamixel), sts3215 and sts3250 (feetech). \
            Fresh servos hold the factory defaults (Return Delay Time 250 = 500 µs included), at the --baud rate. \
            One model: --model and --ids; several on one bus (one protocol): --servos, e.g. the Koch follower's \
            --servos 1-2:xl430-w250,3-6:xl330-m288.

            The bus follows the rate its client sets on the pseudo-terminal, standard or not (pyserial's 14400, \
            128000, 250000 included): servos listening at another rate hear garbage and never answer, as on a real \
            bus, so a scan finds them only at their own rate.

            With --robot, every bus of the robot gets a pseudo-terminal of its own (two arms on two adapters, a \
            humanoid's four buses), all served by one thread and driven by one physics of the whole robot: what \
            one bus's servos do moves what the others' feel. --fault applies to every bus (a servo ID to each bus \
            that has it), or to the bus --fault-bus names.

            With --robot, a robot.yaml with `simulation: {motion: FILE}` is a leader arm held by a person: its \
            joints follow the motion file (looping) and its servos start with torque off, so a teleoperation run \
            reads a moving leader without hardware (e.g. Hardware/robots/so101/leader.yaml). Other robots are \
            served torqued, holding their pose. --hand FILE puts any robot in a person's hand instead: its joints \
            follow FILE (the motion file format of simulation.motion, looping; e.g. \
            Hardware/robots/so101/motions/calibration-sweep.csv, every joint through its range as LeRobot's \
            calibration asks) and its servos start torque off. --hand keys holds the joints where they are and \
            moves them from this terminal: up/down (or 1-9) pick a joint, left/right move it. A hand moves a joint \
            only while its servo's torque is off: a servo switched on holds its joint and the hand lets go, taking \
            hold again when the torque goes off.

            With --wire-timing on (the default) a reply becomes readable only when a real wire would have \
            delivered it: (request + reply bytes) × 10 / baud, plus each servo's Return Delay Time, plus a few \
            µs of firmware time. Off: replies are readable as soon as they are computed.

            Faults (--fault, comma-separated, any subset): corrupt=P flips a byte in a reply with probability P \
            (0-1, per reply packet); drop=P loses a reply with probability P; silent=ID never answers (repeat for \
            several), silent=ID@SECONDS falls silent SECONDS after start and for good (a servo dying mid-run); \
            overload=ID@SECONDS makes servo ID report an overload and drop torque SECONDS after start \
            (cleared by REBOOT); seed=N picks another repeatable sequence of lost and corrupted replies.

            Example (then point any Feetech client at /tmp/so101):
              sinew virtual-bus --protocol feetech --model sts3215 \\
                --ids 1-6 --link /tmp/so101
              sinew scan --port /tmp/so101 --protocol feetech --ids 1-6
            """)

    @Option(
        name: .customLong("protocol"),
        help: "dynamixel or feetech (must match the model; taken from the model when left out).")
    var busProtocol: String?

    @Option(help: "Servo model, lower-case as the vendor writes it: xl330-m077, xl330-m288, xm430-w350, sts3215.")
    var model: String?

    @Option(
        help: ArgumentHelp(
            "Serve a whole simulated robot instead: its physics behind its virtual servos, one pseudo-terminal per "
                + "bus. Prints `BUS PATH` per bus.", valueName: "robot.yaml"))
    var robot: String?

    @Option(
        help: ArgumentHelp("With --robot: also link DIR/<bus name> to each bus's pseudo-terminal.", valueName: "dir"))
    var linkDir: String?

    @Option(help: "Servo IDs (0-252; Feetech 0-253), e.g. 1-6, 1,3,5 or 1-3,7 (default 1-6).")
    var ids: String?

    @Option(
        help: ArgumentHelp(
            "Servos of several models on one bus, instead of --model/--ids: IDS:MODEL groups, e.g. "
                + "1-2:xl430-w250,3-6:xl330-m288.", valueName: "groups"))
    var servos: String?

    @Option(
        help: ArgumentHelp(
            "With --robot: a hand moves the joints along FILE (a joint motion CSV), or from this terminal's keys "
                + "(`keys`), while their servos' torque is off; the servos start torque off.", valueName: "FILE|keys"))
    var hand: String?

    @Option(parsing: .unconditional, help: "Bus rate in bit/s; must be a rate the model supports.")
    var baud = 1_000_000

    @Option(
        help: ArgumentHelp(
            "Also make a symbolic link at PATH to the pseudo-terminal (replaces a link left behind, refuses one "
                + "another virtual bus still serves on; removed on exit while it still leads here).",
            valueName: "path"))
    var link: String?

    @Option(help: "Deliver replies no earlier than a real wire would (on|off).")
    var wireTiming = OnOff.on

    @Option(
        help: ArgumentHelp(
            "Inject faults: corrupt=P,drop=P,silent=ID[@SECONDS],overload=ID@SECONDS,seed=N (P per reply packet, 0-1).",
            valueName: "fault"))
    var fault: String?

    @Option(
        help: ArgumentHelp(
            "With --robot: inject the --fault faults on this bus only (by its name in robot.yaml).",
            valueName: "bus"))
    var faultBus: String?

    /// The bus the arguments describe; every argument mistake is a ValidationError naming it.
    func makeBus(catalog: ServoCatalog) throws -> (VirtualBus, protocolName: String) {
        if let servos {
            guard model == nil, ids == nil else {
                throw ValidationError("--servos names every servo and its model: drop --model and --ids")
            }
            do {
                let bus = try VirtualBus.make(
                    catalog: catalog, servos: servos, baudRate: baud, wireTiming: wireTiming == .on, faults: fault)
                let protocolName = bus.model.wireProtocol == .dynamixel2 ? "dynamixel" : "feetech"
                if let busProtocol, busProtocol.lowercased() != protocolName {
                    throw ValidationError("--servos names \(protocolName) servos, not \(busProtocol)")
                }
                return (bus, protocolName)
            } catch let error as VirtualBusSetupError {
                throw ValidationError(error.description)
            }
        }
        guard let model else {
            throw ValidationError("give --model (and --protocol, --ids), --servos, or --robot ROBOT.yaml")
        }
        let known = catalog.model(named: model)
        let modelProtocol = known.map { $0.wireProtocol == .dynamixel2 ? "dynamixel" : "feetech" }
        let protocolName = busProtocol?.lowercased() ?? modelProtocol ?? "dynamixel"
        if let modelProtocol, ["dynamixel", "feetech"].contains(protocolName), protocolName != modelProtocol {
            throw ValidationError(
                "\(model.lowercased()) is a \(modelProtocol) servo, not \(protocolName): use --protocol "
                    + "\(modelProtocol) (or leave --protocol out)")
        }
        do {
            let bus = try VirtualBus.make(
                catalog: catalog, protocolName: protocolName, modelName: model, ids: ids ?? "1-6", baudRate: baud,
                wireTiming: wireTiming == .on, faults: fault)
            return (bus, protocolName)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        if robot != nil {
            if model != nil || busProtocol != nil || servos != nil || ids != nil {
                throw ValidationError(
                    "--robot takes its servos from robot.yaml: drop --model/--protocol/--ids/--servos")
            }
            if hand == "keys" && !TerminalKeys.standardInputIsAForegroundTerminal {
                throw ValidationError("--hand keys reads this terminal's keys: run it in the foreground of a terminal")
            }
            return
        }
        if linkDir != nil { throw ValidationError("--link-dir goes with --robot (a single bus takes --link)") }
        if hand != nil { throw ValidationError("--hand moves a robot's joints: it goes with --robot ROBOT.yaml") }
        if faultBus != nil { throw ValidationError("--fault-bus goes with --robot (a single bus has no other)") }
        // Only argument mistakes here (reported with this command's usage); a missing Hardware/ folder is
        // reported by run().
        guard let catalog = ServoTables.loadIfPresent() else { return }
        _ = try makeBus(catalog: catalog)
    }

    func run() throws {
        // Before any thread exists, so the server thread inherits the mask and sigwait below gets the signal.
        blockTerminationSignals()
        if let robot {
            try serveRobot(robot)
            return
        }
        let (bus, protocolName) = try makeBus(catalog: try ServoTables.load())
        let server: VirtualBusServer
        do {
            server = try VirtualBusServer.servePseudoTerminal(bus: bus, linkPath: link)
        } catch {
            throw CommandFailure(error.description)
        }
        let path = server.path ?? ""
        let models = Set(bus.servos.map(\.model.name))
        let what =
            models.count == 1
            ? "\(bus.servos.count) virtual \(bus.model.name) servo\(bus.servos.count == 1 ? "" : "s") (\(protocolName), IDs "
                + (ids ?? idRangeText(bus.servos.map(\.busID)))
            : "\(bus.servos.count) virtual servos (\(protocolName), "
                + bus.servos.map { "\($0.busID): \($0.model.name)" }.joined(separator: ", ")
        var description = "Serving \(what), \(baud) bit/s, wire timing \(wireTiming.rawValue)) on \(path)"
        if let link { description += " (link: \(link))" }
        if let fault, !fault.isEmpty { description += ", faults \(fault)" }
        printFlushed(path)
        printFlushed(description + ". Open it like a serial port; Ctrl-C stops.")
        let signal = waitForTerminationSignal()
        let statistics = server.withBus { $0.statistics }
        server.stop()
        printError(
            "virtual bus stopped (\(signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "SIGHUP")): "
                + "\(statistics.requests) requests, \(statistics.replies) replies")
    }

    /// Serves every bus of a robot.yaml on its own pseudo-terminal, the robot's physics behind the servos.
    func serveRobot(_ path: String) throws {
        let checked = try RobotConfiguration.loadChecked(contentsOf: path)
        var faults = FaultInjection.none
        if let fault, !fault.isEmpty {
            do {
                faults = try FaultInjection.parse(fault)
            } catch {
                throw ValidationError("--fault: \(error)")
            }
        }
        var handMotion: JointMotion?
        if let hand, hand != "keys" {
            handMotion = try checked.configuration.loadHandMotion(contentsOf: hand, model: checked.model)
        }
        if let linkDir { try FileManager.default.createDirectory(atPath: linkDir, withIntermediateDirectories: true) }
        let robot = try SimulatedRobot(
            configuration: checked.configuration, model: checked.model, catalog: try ServoTables.load(),
            wireTiming: wireTiming == .on, faults: faults, faultBus: faultBus, terminals: true, linkDirectory: linkDir,
            handMotion: handMotion, manualHand: hand == "keys")
        for entry in robot.terminalPaths { printFlushed("\(entry.bus) \(entry.path)") }
        let served = robot.terminalPaths.map { "\($0.bus): \($0.link ?? $0.path)" }.joined(separator: ", ")
        var keys: TerminalKeys?
        if let handMotion, let hand {
            printFlushed(
                "Serving the simulated \(checked.configuration.name) (\(checked.configuration.joints.count) joints, "
                    + "torque off) in a hand on \(served); while their servos' torque is off its joints follow \(hand) "
                    + String(format: "(%.1f s, looping). Ctrl-C stops.", handMotion.loopPeriodS))
        } else if hand == "keys" {
            printFlushed(
                "Serving the simulated \(checked.configuration.name) (\(checked.configuration.joints.count) joints, "
                    + "torque off) in your hand on \(served). " + ManualHandKeyDecoder.hint + ".")
            keys = startHandKeys(robot: robot, configuration: checked.configuration)
        } else if let simulation = checked.configuration.simulation, let motion = simulation.motion {
            printFlushed(
                "Serving the simulated leader arm \(checked.configuration.name) "
                    + "(\(checked.configuration.joints.count) joints, torque off) on \(served); "
                    + "its joints follow \(simulation.motionPath ?? motion.file) "
                    + String(format: "(%.1f s, looping). Ctrl-C stops.", motion.loopPeriodS))
        } else {
            printFlushed(
                "Serving the simulated \(checked.configuration.name) (\(checked.configuration.joints.count) joints) on "
                    + served + ". Run it with: sinew run \(path) --backend pty --port PATH. Ctrl-C stops.")
        }
        let signal = waitForTerminationSignal()
        keys?.finish()
        robot.stop()
        // Only links still leading to this robot's terminals: another server may have taken one over since.
        for entry in robot.terminalPaths {
            if let link = entry.link { VirtualBusServer.removeLink(link, ifLeadingTo: entry.path) }
        }
        printError("virtual robot stopped (\(signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "SIGHUP"))")
    }
}

extension VirtualBusCommand {
    /// `--hand keys`: this terminal's keys move the simulated robot's joints (``ManualHand``); a status line on
    /// standard error names the picked joint, where it is held and its limits.
    func startHandKeys(robot: SimulatedRobot, configuration: RobotConfiguration) -> TerminalKeys? {
        guard let hand = robot.manualHands.first, let server = robot.servers.first else { return nil }
        // The hand holds every configured joint, bus after bus in robot.yaml's order.
        let names = configuration.joints.map(\.name)
        let state = HandKeyState(names: names)
        let keys = TerminalKeys(
            onEmergencyStop: {}, onRecover: {},
            onOtherByte: { byte in
                guard let line = state.handle(byte, hand: hand, server: server) else { return }
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            }, allBytes: true)
        return keys.isActive ? keys : nil
    }
}

/// The picked joint and the key decoder of `--hand keys`, on the terminal reader's thread.
final class HandKeyState: @unchecked Sendable {
    let names: [String]
    var decoder = ManualHandKeyDecoder()
    var picked = 0
    /// Target step per key press, rad: a held key's auto-repeat (~30 per second) moves ~1.5 rad/s, the hand's
    /// own speed limit (1 rad/s) smooths it.
    static let stepRad = 0.05

    init(names: [String]) { self.names = names }

    /// The status line after `byte`, or nil when it did nothing.
    func handle(_ byte: UInt8, hand: ManualHand, server: VirtualBusServer) -> String? {
        guard let action = decoder.feed(byte), !names.isEmpty else { return nil }
        switch action {
        case .pick(let n): picked = min(n, names.count - 1)
        case .pickNext(let n): picked = ((picked + n) % names.count + names.count) % names.count
        case .nudge: break
        }
        let column = picked
        let target = server.withBus { _ -> Double in
            if case .nudge(let sign) = action { return hand.nudge(column: column, byRad: sign * Self.stepRad) }
            return hand.target(column: column)
        }
        return String(format: "hand: [%d] %@ held at %.3f rad", column + 1, names[column], target)
    }
}

/// IDs as ranges, e.g. `1-6` or `1-2,5`.
func idRangeText(_ ids: [UInt8]) -> String {
    var parts: [String] = []
    var index = 0
    let sorted = ids.sorted()
    while index < sorted.count {
        var end = index
        while end + 1 < sorted.count && sorted[end + 1] == sorted[end] + 1 { end += 1 }
        parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
        index = end + 1
    }
    return parts.joined(separator: ",")
}
