import ArgumentParser
import Foundation
import SinewBus
import SinewDrivers
import SinewKinematics
import SinewRuntime
import SinewSim

struct LoopBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loop",
        abstract: "Wake-up lateness, stage times, compute time and rate of the whole control loop, side by side "
            + "with a bare C timer loop and the wire's limit.",
        discussion: """
            Runs the robot's loop (sense = one sync read per bus, estimate, decide, guard, act = one sync write, \
            record) on the simulated backend: virtual servos with wire-time emulation at the bus's baud rate, \
            driven by the robot's physics, on an in-process pipe. Reports from one run: wake-up lateness \
            p50/p99/p99.9/max, the time of each stage, the tick's compute time (the tick minus the time spent \
            waiting on the bus), the achieved rate and overruns, the wire limit (the most cycles per second the \
            protocol's bytes allow at that baud rate: one sync read of the loop's read block plus one sync write \
            of the goal positions, Return Delay Time 0), and a bare C clock_nanosleep loop at the same rate with \
            the same priority, CPU and timer slack, measured half before and half after the loop. The simulator's \
            serving thread stands in for the servos and the wire: it runs with the loop's SCHED_FIFO priority and \
            timer slack (not pinned), so that other processes do not delay the virtual replies (--plain-simulator \
            leaves it on the default scheduler).

            Default robot: Hardware/robots/so101/robot.yaml. --servos N without --robot benchmarks a synthetic \
            N-joint chain on one bus (--protocol feetech: STS3215, dynamixel: XM430-W350); with --buses B, B such \
            chains, each on a bus of its own (N servos per bus), all served by one simulator thread and one physics. \
            A robot with several buses is measured twice in the same run: reading its buses together (robot.yaml's \
            loop.bus_io, or --bus-io) and one after another (sequential); the report gives both rates, the wire \
            limit of the slowest bus (what the buses together allow) and the sum of the buses' cycles (what they \
            allow in sequence). The loop always uses \
            the overrun policy skip: with --rate above the wire limit, an overrunning tick waits for the next \
            deadline on the rate's grid, so the achieved rate approaches the wire limit as the rate grows (a \
            rate several times the wire limit shows the wire itself). --as-fast-as-possible runs the ticks back \
            to back. Above the wire limit the safety supervisor's overrun rule is off (every tick overruns on \
            purpose); every other rule stays on.
            Busy polling (--busy-poll-us, default 50): the loop's bus master sleeps until 50 µs before a reply is \
            due and polls from there, and the simulated servos poll over the last 200 µs (or the loop's figure, if \
            longer) before a reply falls due and after each packet, instead of paying a thread wake-up each time. It is the robot.yaml \
            setting loop.busy_poll_us, off in the shipped robots (it burns CPU while the bus is busy); \
            --busy-poll-us 0 measures the sleeping loop.
            Goals on a 2-core machine: wake-up p99 ≤ 1.2 × the bare loop's; compute p99 ≤ 20 µs for 6 joints; \
            achieved ≥ 95% of the wire limit when the wire is the bottleneck (one bus); with several buses, \
            ≥ 90% of the slowest bus's wire limit and ≥ 3.5 × the sequential rate for four buses.
            Example: sinew bench loop --rate 500 --duration 10
            Example: sinew bench loop --buses 4 --servos 6 --rate 10000 --duration 10
            """)

    enum SyntheticProtocol: String, ExpressibleByArgument, CaseIterable {
        case feetech, dynamixel
    }

    @Option(help: "The robot's robot.yaml (default: the shipped SO-101).")
    var robot: String?

    @Option(
        parsing: .unconditional,
        help: "Benchmark a synthetic robot of this many joints (one servo each, IDs 1…N) instead.")
    var servos: Int?

    @Option(
        name: .customLong("protocol"),
        help: "Bus protocol of the synthetic robot (with --servos; default feetech).")
    var busProtocol: SyntheticProtocol?

    @Option(
        parsing: .unconditional,
        help: "Buses of the synthetic robot, each with --servos servos of its own (1-16; default 1).")
    var buses: Int?

    @Option(
        help: ArgumentHelp(
            "How the loop reads several buses together: poll or threads (default: the robot's loop.bus_io). "
                + "The same robot is also measured with the buses in sequence.",
            valueName: "mode"))
    var busIO: RobotConfiguration.BusIO?

    @Option(parsing: .unconditional, help: "Loop rate in Hz, 1-10000 (default: the robot's loop.rate_hz).")
    var rate: Double?

    @Option(parsing: .unconditional, help: "Bus baud rate in bit/s (default: the robot's).")
    var baud: Int?

    @Option(parsing: .unconditional, help: "Seconds the loop runs (at most 3600); the bare C loop runs as long again.")
    var duration = 5.0

    @Option(
        parsing: .unconditional,
        help: "SCHED_FIFO priority of the loop and of the bare loop (default: the robot's loop.priority).")
    var priority: Int?

    @Option(
        parsing: .unconditional,
        help: "CPU to pin the loop and the bare loop to (default: the robot's loop.cpu, or none).")
    var cpu: Int?

    @Flag(help: "Run the ticks back to back without sleeping (no wake-up lateness and no bare loop then).")
    var asFastAsPossible = false

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Busy polling around each servo reply's due time, µs (loop.busy_poll_us; the benchmark's own default "
                + "is \(Int(LoopBench.defaultBusyPollUs)), whatever the robot.yaml says; 0: sleep while waiting). "
                + "> 0 also makes the simulated servos poll instead of sleeping.",
            valueName: "us"))
    var busyPollUs: Double = LoopBench.defaultBusyPollUs

    /// The runtime at its fastest: the loop and the simulated servos poll over the last 50 µs before a
    /// reply is due instead of paying a thread wake-up each (tens of µs on a virtual machine, several
    /// percent of a 1.7 ms cycle).
    static let defaultBusyPollUs = 50.0

    @Flag(help: "Virtual servos answer at once instead of when the wire would have delivered their replies.")
    var noWireTiming = false

    @Flag(
        help: "Leave the simulator's threads on the default scheduler and timer slack (by default they get the loop's)."
    )
    var plainSimulator = false

    @Flag(
        help: """
            Print one JSON object: wake_p50_us, wake_p99_us, wake_p999_us, wake_max_us, bare_wake_*_us, compute_*_us, \
            <stage>_p50_us / _p99_us, achieved_hz, overruns, wire_limit_hz and more.
            """)
    var json = false

    func validate() throws {
        if let servos, !(1...252).contains(servos) { throw ValidationError("--servos must be between 1 and 252") }
        if servos != nil && robot != nil {
            throw ValidationError("--servos builds a synthetic robot; it cannot be combined with --robot")
        }
        if busProtocol != nil && servos == nil {
            throw ValidationError("--protocol chooses the bus of the synthetic robot: give --servos N with it")
        }
        if let buses {
            guard servos != nil else {
                throw ValidationError("--buses makes a synthetic robot of --servos N servos per bus: give --servos")
            }
            guard (1...16).contains(buses) else { throw ValidationError("--buses must be between 1 and 16") }
        }
        if busIO == .sequential {
            throw ValidationError(
                "--bus-io chooses how the buses are read together: poll or threads (the run also "
                    + "measures them in sequence)")
        }
        if let rate, !(rate >= 1 && rate <= 10_000) {
            throw ValidationError("--rate must be a number of Hz in [1, 10000]; got \(rate)")
        }
        if let baud, baud <= 0 { throw ValidationError("--baud must be a positive number of bit/s") }
        if !(duration > 0 && duration <= 3600) {
            throw ValidationError("--duration must be a number of seconds in (0, 3600]; got \(duration)")
        }
        if let priority, !(1...99).contains(priority) { throw ValidationError("--priority must be between 1 and 99") }
        if let cpu, !(0...1023).contains(cpu) { throw ValidationError("--cpu must be a CPU index in 0-1023") }
        if !(busyPollUs >= 0 && busyPollUs <= 1_000_000) {
            throw ValidationError("--busy-poll-us must be in [0, 1000000]")
        }
        if asFastAsPossible && rate != nil {
            throw ValidationError("--rate and --as-fast-as-possible exclude each other")
        }
    }

    func run() throws {
        let catalog = try ServoTables.load()
        let loaded = try loadRobot(catalog: catalog)
        let configuration = loaded.configuration
        let model = loaded.model
        for warning in loaded.warnings { printError("warning: \(warning)") }
        let wire = try Self.wireLimits(configuration: configuration, catalog: catalog)
        let wireLimitHz = wire.map(\.cyclesPerSecond).min() ?? 0
        // The buses one after another: their cycles add up.
        let sequentialWireLimitHz = wire.isEmpty ? 0 : 1 / wire.reduce(0) { $0 + 1 / max($1.cyclesPerSecond, 1e-9) }
        let busCount = wire.count
        let hertz = configuration.loop.rateHz
        let schedulerConfiguration = SchedulerConfiguration(
            rate: asFastAsPossible ? .asFastAsPossible : .fixed(hertz: hertz), overrunPolicy: .skip,
            fifoPriority: configuration.loop.priority, cpu: configuration.loop.cpu, lockMemory: true)
        if !json {
            printError(
                "\(configuration.name): \(configuration.joints.count) joints, "
                    + wire.map { "bus \($0.bus) \($0.protocolName) at \($0.baudRate) bit/s" }.joined(separator: ", ")
                    + (busCount > 1 ? " read by \(configuration.loop.busIO) and in sequence" : "")
                    + (asFastAsPossible ? ", as fast as possible" : String(format: ", %.0f Hz", hertz))
                    + String(format: "; measuring %.1f s of loop", duration)
                    + (asFastAsPossible ? "" : String(format: " between 2 × %.1f s of bare C loop", duration / 2)))
        }

        // The bare loop runs before the simulated robot exists and after it has stopped: the simulator's
        // threads are part of the loop under test, not of the baseline.
        let bareTicks = max(1, Int((duration * hertz / 2).rounded()))
        var bareSamples: [Int64] = []
        var bareRealtime: RealtimeSetupReport?
        var bareErrno: Int32 = 0
        if !asFastAsPossible {
            let first = measureBareTimerLoop(hertz: hertz, ticks: bareTicks, like: schedulerConfiguration)
            bareSamples += first.latenessNs
            bareRealtime = first.realtime
            bareErrno = first.errno
        }

        let run = try runLoop(
            configuration: configuration, model: model, catalog: catalog, scheduler: schedulerConfiguration,
            deliberateOverruns: !asFastAsPossible && hertz > wireLimitHz)
        // The same robot with its buses in sequence, in the same run (between the two halves of the bare loop).
        var sequential: LoopRun?
        if busCount > 1 {
            sequential = try runLoop(
                configuration: configuration.replacingBusIO(.sequential), model: model, catalog: catalog,
                scheduler: schedulerConfiguration,
                deliberateOverruns: !asFastAsPossible && hertz > sequentialWireLimitHz)
        }

        if !asFastAsPossible {
            let second = measureBareTimerLoop(hertz: hertz, ticks: bareTicks, like: schedulerConfiguration)
            bareSamples += second.latenessNs
            if bareErrno == 0 { bareErrno = second.errno }
        }
        if bareErrno != 0 { printError("warning: the bare C loop stopped early: \(errnoName(bareErrno))") }

        let result = LoopBenchResult(
            robot: configuration.name, joints: configuration.joints.count, wire: wire, wireLimitHz: wireLimitHz,
            targetHz: asFastAsPossible ? nil : hertz, wireTiming: !noWireTiming, busyPollUs: busyPollUs,
            busIO: run.busIO, sequentialWireLimitHz: sequentialWireLimitHz,
            sequentialAchievedHz: sequential?.report.achievedHz ?? run.report.achievedHz,
            sequentialFinalState: sequential?.finalState, sequentialFirstSafetyEvent: sequential?.firstSafetyEvent,
            report: run.report,
            realtime: run.realtime, bareRealtime: bareRealtime, bare: LatencySummary(samplesNs: bareSamples),
            bytesPerTick: run.bytesPerTick, finalState: run.finalState, safetyEvents: run.safetyEvents,
            firstSafetyEvent: run.firstSafetyEvent)
        if json { print(result.json.text) } else { print(result.table) }
    }

    struct LoopRun {
        var report: LoopReport
        /// How the loop read the buses (`RobotLoop.busIO`).
        var busIO: RobotConfiguration.BusIO
        var realtime: RealtimeSetupReport
        var bytesPerTick: Double
        var finalState: String
        var safetyEvents: Int
        var firstSafetyEvent: String?
    }

    /// Builds the simulated robot, configures and activates the loop, runs it for `duration` seconds, shuts
    /// it down and stops the simulator. With `deliberateOverruns` (a rate above the wire limit) the safety
    /// supervisor's overrun rule is off; every other rule stays on.
    /// `around`: called with the activated loop before its scheduler starts; what it returns is called after the
    /// loop stopped (`sinew bench recording` attaches its recorder there).
    func runLoop(
        configuration: RobotConfiguration, model: RobotModel, catalog: ServoCatalog,
        scheduler schedulerConfiguration: SchedulerConfiguration, deliberateOverruns: Bool,
        around: ((RobotLoop) throws -> () throws -> Void)? = nil
    ) throws -> LoopRun {
        var made: Result<SimulatedRobot, any Error> = .failure(ValidationError("no simulated robot"))
        let build = {
            made = Result {
                try SimulatedRobot(
                    configuration: configuration, model: model, catalog: catalog, wireTiming: !noWireTiming)
            }
        }
        if plainSimulator {
            build()
        } else {
            // The simulator's serving thread stands in for the servos and the wire: started from a thread
            // with the loop's scheduling, it inherits SCHED_FIFO and the tight timer slack.
            runOnThreadWithLoopScheduling(like: schedulerConfiguration, build)
        }
        let simulated = try made.get()
        defer { simulated.stop() }
        var counters: [String: ByteCountingTransport] = [:]
        for (name, transport) in simulated.transports { counters[name] = ByteCountingTransport(transport) }
        let transports = counters.mapValues { $0 as any ByteTransport }
        let loop: RobotLoop
        if deliberateOverruns {
            // Every tick overruns on purpose here: the overrun rule would stop the very thing measured.
            loop = try RobotLoop(
                configuration: configuration, model: model, catalog: catalog, transports: transports,
                overrunBudget: .max)
        } else {
            loop = try RobotLoop(configuration: configuration, model: model, catalog: catalog, transports: transports)
        }
        do {
            try loop.lifecycle.configure()
            try loop.lifecycle.activate()
        } catch {
            throw ValidationError("\(configuration.file): \(error)")
        }
        for counter in counters.values { counter.resetCounts() }
        let after = try around?(loop)
        let scheduler = Scheduler(configuration: schedulerConfiguration, body: loop)
        let realtime = try scheduler.start()
        Thread.sleep(forTimeInterval: duration)
        scheduler.requestStop()
        let report = try scheduler.join()
        try after?()
        let finalState = loop.lifecycle.state
        try? loop.lifecycle.shutdown()
        let events = loop.supervisor.events.events
        let bytes = counters.values.reduce(0) { $0 + $1.bytesWritten + $1.bytesRead }
        return LoopRun(
            report: report, busIO: loop.busIO, realtime: realtime,
            bytesPerTick: report.ticks > 0 ? Double(bytes) / Double(report.ticks) : 0, finalState: "\(finalState)",
            safetyEvents: events.count, firstSafetyEvent: events.first.map { loop.supervisor.describe($0) })
    }

    // MARK: The robot

    struct LoadedRobot {
        var configuration: RobotConfiguration
        var model: RobotModel
        var warnings: [String]
    }

    /// The robot to benchmark, with the command line's overrides (rate, baud, priority, CPU) applied.
    func loadRobot(catalog: ServoCatalog) throws -> LoadedRobot {
        let checked: CheckedRobotConfiguration
        if let servos {
            checked = try SyntheticRobot.make(
                joints: servos, buses: buses ?? 1, protocol: busProtocol ?? .feetech, baudRate: baud ?? 1_000_000)
        } else {
            let path = try robot ?? HardwareDirectory.locate() + "/robots/so101/robot.yaml"
            checked = try RobotConfiguration.loadChecked(contentsOf: path)
        }
        let c = checked.configuration
        let buses = c.buses.map { bus in
            RobotConfiguration.Bus(
                name: bus.name, busProtocol: bus.busProtocol, port: bus.port, baudRate: baud ?? bus.baudRate,
                location: bus.location)
        }
        let loop = RobotConfiguration.Loop(
            rateHz: rate ?? c.loop.rateHz, priority: priority ?? c.loop.priority, cpu: cpu ?? c.loop.cpu,
            overrun: .skip, catchUpMax: c.loop.catchUpMax, busyPollUs: busyPollUs, busIO: busIO ?? c.loop.busIO)
        let configuration = RobotConfiguration(
            name: c.name, file: c.file, modelPath: c.modelPath, buses: buses, joints: c.joints, loop: loop,
            policy: c.policy, safety: c.safety, recording: c.recording, imu: c.imu)
        return LoadedRobot(
            configuration: configuration, model: checked.model, warnings: checked.warnings.map { "\($0)" })
    }

    // MARK: The wire

    /// The physical limit of one bus: the loop's sync read plus sync write, in bytes and cycles per second.
    struct WireLimit {
        var bus: String
        var protocolName: String
        var baudRate: Int
        var servos: Int
        /// Bytes of the block the loop reads from each servo, and of the goal it writes to each.
        var readLength: Int
        var writeLength: Int
        var bytesPerCycle: Int
        var cyclesPerSecond: Double
        /// The same cycle on the simulator, whose virtual servos take `firmwareDelayNs` to start each reply.
        var simulatedCyclesPerSecond: Double
        /// Seconds the cycle's sync write occupies the wire (no reply waits on it).
        var writeSeconds: Double
    }

    /// The most reading the buses together can gain over reading them in sequence: in sequence the loop waits
    /// for each bus's sync read, but a sync write waits for nothing, so every write but the last travels its wire
    /// while the next bus is read — a sequential cycle is Σ reads + the longest write, not Σ cycles
    /// (docs/bench-loop.md: about 3.55× for four buses of six STS3215, not 4×).
    static func speedupCeiling(_ wire: [WireLimit]) -> Double {
        guard let together = wire.map(\.cyclesPerSecond).min(), together > 0 else { return 0 }
        let reads = wire.reduce(0) { $0 + 1 / max($1.cyclesPerSecond, 1e-9) - $1.writeSeconds }
        return (reads + (wire.map(\.writeSeconds).max() ?? 0)) * together
    }

    /// Per bus, from the protocol's packet sizes (docs/protocols.md) and the registers `RobotLoop` reads and
    /// writes: one read of Present Position and Present Velocity (and Present Current where it sits within
    /// 24 bytes of them), one write of Goal Position; Return Delay Time 0, as configure sets it.
    static func wireLimits(configuration: RobotConfiguration, catalog: ServoCatalog) throws -> [WireLimit] {
        var limits: [WireLimit] = []
        for bus in configuration.buses {
            let joints = configuration.joints.filter { $0.bus == bus.name }
            guard let first = joints.first, let servo = catalog.model(named: first.servoModel) else { continue }
            guard let position = servo.register(named: "Present Position"),
                let velocity = servo.register(named: "Present Velocity"),
                let goal = servo.register(named: "Goal Position")
            else { throw ValidationError("\(servo.name): the servo table lacks a position or velocity register") }
            var low = min(position.address, velocity.address)
            var high = max(position.address + position.size, velocity.address + velocity.size)
            if let current = servo.register(named: "Present Current"), abs(current.address - low) < 24 {
                low = min(low, current.address)
                high = max(high, current.address + current.size)
            }
            let servos = joints.count + joints.filter { $0.coupled != nil }.count
            let wireProtocol: BusProtocol = bus.busProtocol == .dynamixel ? .dynamixel : .feetechSTS
            let readLength = high - low
            let writeBytes = wireProtocol == .dynamixel ? 14 + servos * (1 + goal.size) : 8 + servos * (1 + goal.size)
            let requestAndReply =
                wireProtocol == .dynamixel
                ? (14 + servos) + servos * (Dynamixel.statusOverhead + readLength) + writeBytes
                : (8 + servos) + servos * (Feetech.overhead + readLength) + writeBytes
            limits.append(
                WireLimit(
                    bus: bus.name, protocolName: bus.busProtocol.rawValue, baudRate: bus.baudRate, servos: servos,
                    readLength: readLength, writeLength: goal.size, bytesPerCycle: requestAndReply,
                    cyclesPerSecond: BusBenchmark.wireLimitCyclesPerSecond(
                        protocol: wireProtocol, servos: servos, readLength: readLength, writeLength: goal.size,
                        baudRate: bus.baudRate, returnDelayMicroseconds: 0),
                    simulatedCyclesPerSecond: 1
                        / (Double(requestAndReply) * 10 / Double(bus.baudRate) + Double(servos)
                            * Double(VirtualBusOptions().firmwareDelayNs) * 1e-9),
                    writeSeconds: Double(writeBytes) * 10 / Double(bus.baudRate)))
        }
        return limits
    }
}

/// A transport that counts the bytes the loop sends and receives (for the measured bytes per tick).
final class ByteCountingTransport: ByteTransport, @unchecked Sendable {
    let inner: any ByteTransport
    private(set) var bytesWritten = 0
    private(set) var bytesRead = 0

    init(_ inner: any ByteTransport) { self.inner = inner }

    func resetCounts() {
        bytesWritten = 0
        bytesRead = 0
    }

    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        try inner.write(bytes, deadline: deadline)
        bytesWritten &+= bytes.count
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) -> Int {
        let n = try inner.read(into: buffer, deadline: deadline)
        bytesRead &+= n
        return n
    }

    func flushInput() throws(TransportError) { try inner.flushInput() }

    var baudRate: Int { inner.baudRate }

    func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) { try inner.setBaudRate(bitsPerSecond) }
}

/// A synthetic robot for `--servos N` (`--buses B`): B chains of N revolute joints about vertical axes (gravity
/// loads none of them, so any N can hold its pose) on a common base, one servo per joint, each chain on a bus of
/// its own (IDs 1…N), following a gentle looping trajectory. Written to a temporary directory and loaded like any
/// robot.yaml.
enum SyntheticRobot {
    static func make(
        joints n: Int, buses: Int = 1, protocol busProtocol: LoopBench.SyntheticProtocol, baudRate: Int
    ) throws -> CheckedRobotConfiguration {
        let servo = busProtocol == .feetech ? "sts3215" : "xm430-w350"
        let effortNm = busProtocol == .feetech ? 1.8 : 3.5
        // One bus keeps the names of the single-chain robot; several get a prefix per chain.
        func joint(_ b: Int, _ j: Int) -> String { buses == 1 ? "joint\(j)" : "b\(b)_joint\(j)" }
        func linkName(_ b: Int, _ j: Int) -> String { buses == 1 ? "link\(j)" : "b\(b)_link\(j)" }
        func busName(_ b: Int) -> String { buses == 1 ? "chain" : "bus\(b)" }
        let name = buses == 1 ? "chain\(n)" : "chains\(buses)x\(n)"
        var urdf = "<?xml version=\"1.0\"?>\n<robot name=\"\(name)\">\n"
        func link(_ name: String) -> String {
            // 60 g, about the size of a servo with its bracket: 0.04 m along x.
            """
              <link name="\(name)">
                <inertial>
                  <origin xyz="0.02 0 0" rpy="0 0 0"/>
                  <mass value="0.06"/>
                  <inertia ixx="1.5e-05" ixy="0" ixz="0" iyy="1.6e-05" iyz="0" izz="1.6e-05"/>
                </inertial>
              </link>

            """
        }
        urdf += link("base_link")
        for b in 1...buses {
            for j in 1...n {
                // The chains start 0.1 m apart along y.
                let origin = j == 1 ? "0 \(Double(b - 1) * 0.1) 0.05" : "0.04 0 0"
                urdf += """
                      <joint name="\(joint(b, j))" type="revolute">
                        <origin xyz="\(origin)" rpy="0 0 0"/>
                        <parent link="\(j == 1 ? "base_link" : linkName(b, j - 1))"/>
                        <child link="\(linkName(b, j))"/>
                        <axis xyz="0 0 1"/>
                        <limit lower="-2.0" upper="2.0" velocity="5.0" effort="\(effortNm)"/>
                        <dynamics damping="0.02" friction="0.02"/>
                      </joint>

                    """
                urdf += link(linkName(b, j))
            }
        }
        urdf += "</robot>\n"

        var yaml = """
            name: \(name)
            model: chain.urdf
            buses:

            """
        for b in 1...buses {
            yaml += "  - {name: \(busName(b)), protocol: \(busProtocol.rawValue), port: virtual, baud: \(baudRate)}\n"
        }
        yaml += "joints:\n"
        for b in 1...buses {
            for j in 1...n {
                yaml +=
                    "  - {name: \(joint(b, j)), bus: \(busName(b)), id: \(j), servo: \(servo), "
                    + "limits: {velocity_rad_s: 4.0, effort_nm: \(effortNm)}, safe_state: hold}\n"
            }
        }
        let up = Array(repeating: "0.3", count: n * buses).joined(separator: ", ")
        let down = Array(repeating: "-0.3", count: n * buses).joined(separator: ", ")
        yaml += """
            loop: {rate_hz: 500, priority: 80, overrun: skip}
            policy:
              type: trajectory
              loop: true
              waypoints:
                - {duration_s: 1.0, positions_rad: [\(up)]}
                - {duration_s: 2.0, positions_rad: [\(down)]}
                - {duration_s: 2.0, positions_rad: [\(up)]}

            """

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sinew-bench-loop-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try urdf.write(to: directory.appendingPathComponent("chain.urdf"), atomically: true, encoding: .utf8)
        let yamlPath = directory.appendingPathComponent("robot.yaml").path
        try yaml.write(toFile: yamlPath, atomically: true, encoding: .utf8)
        do {
            return try RobotConfiguration.loadChecked(contentsOf: yamlPath)
        } catch {
            throw ValidationError("the synthetic robot of \(buses) × \(n) joints does not load: \(error)")
        }
    }
}

extension RobotConfiguration.BusIO: ExpressibleByArgument {}

/// Figures of one `sinew bench loop` run, as a table or one JSON object.
struct LoopBenchResult {
    var robot: String
    var joints: Int
    var wire: [LoopBench.WireLimit]
    var wireLimitHz: Double
    /// nil when running as fast as possible.
    var targetHz: Double?
    var wireTiming: Bool
    var busyPollUs: Double
    /// How the loop read its buses (`sequential` for one bus).
    var busIO: RobotConfiguration.BusIO
    /// What the buses allow one after another: 1 / Σ (1 / each bus's wire limit).
    var sequentialWireLimitHz: Double
    /// The same robot with its buses in sequence, measured in the same run (the run itself for one bus).
    var sequentialAchievedHz: Double
    var sequentialFinalState: String?
    var sequentialFirstSafetyEvent: String?
    var report: LoopReport
    var realtime: RealtimeSetupReport
    var bareRealtime: RealtimeSetupReport?
    var bare: LatencySummary
    var bytesPerTick: Double
    var finalState: String
    var safetyEvents: Int
    var firstSafetyEvent: String?

    static let computeGoalUs = 20.0
    static let wakeGoalRatio = 1.2
    static let wireGoalFraction = 0.95
    /// With several buses: of the slowest bus's wire limit, and (four buses) the rate over the sequential one.
    static let multiBusWireGoalFraction = 0.90
    static let fourBusSpeedupGoal = 3.5

    var busCount: Int { wire.count }

    /// The rate with the buses together over the rate with them in sequence.
    var speedupVsSequential: Double? {
        busCount > 1 && sequentialAchievedHz > 0 ? report.achievedHz / sequentialAchievedHz : nil
    }

    /// The wire limits the rate: asked for more than the wire allows (or no sleeping at all).
    var wireIsBottleneck: Bool { wireTiming && wireLimitHz > 0 && (targetHz.map { $0 > wireLimitHz } ?? true) }

    var wakeRatio: Double? {
        report.wakeLateness.count > 0 && bare.p99Ns > 0 ? Double(report.wakeLateness.p99Ns) / Double(bare.p99Ns) : nil
    }

    var wireFraction: Double { wireLimitHz > 0 ? report.achievedHz / wireLimitHz : 0 }

    var json: JSONValue {
        func us(_ ns: UInt64) -> JSONValue { .number((Double(ns) / 10).rounded() / 100) }
        func optional(_ x: Double?) -> JSONValue { x.map { .number($0) } ?? .null }
        let hasWake = report.wakeLateness.count > 0
        var members: [(String, JSONValue)] = [
            ("robot", .string(robot)), ("joints", .integer(joints)), ("buses", .integer(busCount)),
            ("servos_per_bus", .array(wire.map { .integer($0.servos) })), ("bus_io", .string(busIO.rawValue)),
            ("target_hz", optional(targetHz)), ("wire_timing", .bool(wireTiming)),
            ("busy_poll_us", .number(busyPollUs)),
            ("ticks", .integer(Int(report.ticks))), ("duration_s", .number(report.elapsedSeconds)),
            ("achieved_hz", .number(report.achievedHz)),
            ("sequential_achieved_hz", .number(sequentialAchievedHz)),
            ("speedup_vs_sequential", optional(speedupVsSequential)),
            ("sequential_final_state", sequentialFinalState.map { .string($0) } ?? .null),
            ("sequential_first_safety_event", sequentialFirstSafetyEvent.map { .string($0) } ?? .null),
            ("overruns", .integer(Int(report.overruns))),
            ("skipped_deadlines", .integer(Int(report.skippedDeadlines))),
            ("wake_p50_us", hasWake ? us(report.wakeLateness.p50Ns) : .null),
            ("wake_p99_us", hasWake ? us(report.wakeLateness.p99Ns) : .null),
            ("wake_p999_us", hasWake ? us(report.wakeLateness.p999Ns) : .null),
            ("wake_max_us", hasWake ? us(report.wakeLateness.maxNs) : .null),
            ("bare_wake_p50_us", bare.count > 0 ? us(bare.p50Ns) : .null),
            ("bare_wake_p99_us", bare.count > 0 ? us(bare.p99Ns) : .null),
            ("bare_wake_p999_us", bare.count > 0 ? us(bare.p999Ns) : .null),
            ("bare_wake_max_us", bare.count > 0 ? us(bare.maxNs) : .null),
            ("bare_ticks", .integer(Int(bare.count))),
            ("wake_p99_vs_bare", optional(wakeRatio)),
            ("compute_p50_us", us(report.compute.p50Ns)), ("compute_p99_us", us(report.compute.p99Ns)),
            ("compute_p999_us", us(report.compute.p999Ns)), ("compute_max_us", us(report.compute.maxNs)),
            ("tick_p50_us", us(report.tick.p50Ns)), ("tick_p99_us", us(report.tick.p99Ns)),
            ("tick_max_us", us(report.tick.maxNs)),
        ]
        for stage in TickStage.allCases {
            let s = report.stage(stage)
            members.append(("\(stage.name)_p50_us", us(s.p50Ns)))
            members.append(("\(stage.name)_p99_us", us(s.p99Ns)))
            members.append(("\(stage.name)_max_us", us(s.maxNs)))
        }
        members += [
            ("wire_limit_hz", .number(wireLimitHz)), ("wire_fraction", .number(wireFraction)),
            ("sequential_wire_limit_hz", .number(sequentialWireLimitHz)),
            ("speedup_wire_ceiling", .number(LoopBench.speedupCeiling(wire))),
            ("wire_is_bottleneck", .bool(wireIsBottleneck)),
            ("wire_bytes_per_cycle", .integer(wire.reduce(0) { $0 + $1.bytesPerCycle })),
            ("measured_bytes_per_tick", .number((bytesPerTick * 10).rounded() / 10)),
            (
                "bus_wire",
                .array(
                    wire.map { w in
                        .object([
                            ("name", .string(w.bus)), ("protocol", .string(w.protocolName)),
                            ("baud", .integer(w.baudRate)), ("servos", .integer(w.servos)),
                            ("read_bytes_per_servo", .integer(w.readLength)),
                            ("write_bytes_per_servo", .integer(w.writeLength)),
                            ("bytes_per_cycle", .integer(w.bytesPerCycle)),
                            ("wire_limit_hz", .number(w.cyclesPerSecond)),
                            ("simulated_limit_hz", .number(w.simulatedCyclesPerSecond)),
                        ])
                    })
            ),
            ("realtime", .string("\(realtime)")),
            ("bare_realtime", bareRealtime.map { .string("\($0)") } ?? .null),
            ("final_state", .string(finalState)), ("safety_events", .integer(safetyEvents)),
        ]
        return .object(members)
    }

    var table: String {
        func us(_ ns: UInt64) -> String {
            let v = Double(ns) / 1000
            return String(format: v < 100 ? "%9.2f" : "%9.1f", v)
        }
        func row(_ label: String, _ s: LatencySummary) -> String {
            label.padding(toLength: 22, withPad: " ", startingAt: 0) + us(s.p50Ns) + us(s.p99Ns) + us(s.p999Ns)
                + us(s.maxNs)
        }
        var lines: [String] = []
        let rateText = targetHz.map { String(format: "%.0f Hz", $0) } ?? "as fast as possible"
        lines.append(
            "\(robot): \(joints) joints, \(rateText), \(report.ticks) ticks in "
                + String(format: "%.2f s", report.elapsedSeconds) + (wireTiming ? "" : " (no wire timing)"))
        lines.append(
            "real time: \(realtime)"
                + (busyPollUs > 0
                    ? String(format: " / busy polling %.0f µs around each reply (--busy-poll-us 0: sleep)", busyPollUs)
                    : " / no busy polling"))
        lines.append("")
        lines.append("µs".padding(toLength: 22, withPad: " ", startingAt: 0) + "      p50      p99    p99.9      max")
        if report.wakeLateness.count > 0 { lines.append(row("wake-up lateness", report.wakeLateness)) }
        if bare.count > 0 { lines.append(row("bare C loop wake-up", bare)) }
        for stage in TickStage.allCases { lines.append(row("  \(stage.name)", report.stage(stage))) }
        lines.append(row("tick", report.tick))
        lines.append(row("tick compute", report.compute))
        lines.append("")
        lines.append(
            String(
                format: "achieved %.1f Hz, %lld overruns, %lld deadlines skipped", report.achievedHz, report.overruns,
                report.skippedDeadlines) + (busCount > 1 ? " (\(busCount) buses read together: \(busIO))" : ""))
        if let speedup = speedupVsSequential {
            lines.append(
                String(
                    format: "the same robot with its buses in sequence: %.1f Hz (%@); together %.2f × that",
                    sequentialAchievedHz, sequentialFinalState ?? "?", speedup)
                    + (sequentialFirstSafetyEvent.map { "; in sequence: \($0)" } ?? ""))
            lines.append(
                String(
                    format: "wire limit: %.1f cycles/s for the slowest bus (the buses together), %.1f in sequence",
                    wireLimitHz, sequentialWireLimitHz))
        }
        for w in wire {
            lines.append(
                String(
                    format: "wire limit, bus %@ (%@, %ld servos, %ld bit/s): %ld bytes per cycle "
                        + "(sync read %ld + sync write %ld bytes per servo) → %.1f cycles/s",
                    w.bus, w.protocolName, w.servos, w.baudRate, w.bytesPerCycle, w.readLength, w.writeLength,
                    w.cyclesPerSecond))
        }
        lines.append(String(format: "measured on the wire: %.1f bytes per tick", bytesPerTick))
        if wireTiming, let simulated = wire.map(\.simulatedCyclesPerSecond).min() {
            lines.append(
                String(
                    format: "the virtual servos take %.0f µs to start each reply: at most %.1f cycles/s in simulation",
                    Double(VirtualBusOptions().firmwareDelayNs) / 1000, simulated))
        }
        lines.append("")
        lines.append("goals:")
        if let ratio = wakeRatio {
            lines.append(
                String(
                    format: "  wake-up p99 %.1f µs = %.2f × bare p99 %.1f µs (goal ≤ %.1f×): %@",
                    report.wakeLateness.p99Us, ratio, bare.p99Us, Self.wakeGoalRatio,
                    ratio <= Self.wakeGoalRatio ? "met" : "missed"))
        } else {
            lines.append("  wake-up p99 vs bare loop: not measured (no sleeping)")
        }
        let computeNote = joints == 6 ? "" : ", set for 6 joints"
        lines.append(
            String(
                format: "  tick compute p99 %.2f µs (goal ≤ %.0f µs%@): %@", report.compute.p99Us, Self.computeGoalUs,
                computeNote, report.compute.p99Us <= Self.computeGoalUs ? "met" : "missed"))
        if wireIsBottleneck {
            let goal = busCount > 1 ? Self.multiBusWireGoalFraction : Self.wireGoalFraction
            lines.append(
                String(
                    format: "  achieved %.1f Hz = %.1f%% of the %@wire limit %.1f Hz (goal ≥ %.0f%%): %@",
                    report.achievedHz, 100 * wireFraction, busCount > 1 ? "slowest bus's " : "", wireLimitHz,
                    100 * goal, wireFraction >= goal ? "met" : "missed"))
            if let speedup = speedupVsSequential {
                let goalText =
                    busCount == 4
                    ? String(
                        format: " (goal ≥ %.1f× for four buses): %@", Self.fourBusSpeedupGoal,
                        speedup >= Self.fourBusSpeedupGoal ? "met" : "missed") : ""
                lines.append(
                    String(
                        format: "  %.2f × the rate with the buses in sequence (%.1f Hz; the wire allows %.2f×)%@",
                        speedup, sequentialAchievedHz, LoopBench.speedupCeiling(wire), goalText))
            }
            if let simulated = wire.map(\.simulatedCyclesPerSecond).min(), report.achievedHz > 0 {
                lines.append(
                    String(
                        format: "    %.0f µs per cycle beyond the simulated wire (%.1f%% of its %.1f cycles/s): the "
                            + "tick's own compute, thread wake-ups on both ends of the pipe%@",
                        1e6 / report.achievedHz - 1e6 / simulated, 100 * report.achievedHz / simulated, simulated,
                        targetHz == nil ? "" : ", waiting for the next deadline on the grid"))
            }
        } else if !wireTiming {
            lines.append(
                String(
                    format:
                        "  no wire emulated (the virtual servos answer at once): %.1f Hz = %.1f × the wire limit %.1f Hz",
                    report.achievedHz, wireFraction, wireLimitHz))
        } else {
            lines.append(
                String(
                    format: "  the wire is not the bottleneck: %.0f Hz uses %.0f%% of its %.1f cycles/s "
                        + "(achieved %.1f Hz = %.1f%% of the rate)",
                    targetHz ?? 0, 100 * (targetHz ?? 0) / max(wireLimitHz, 1e-9), wireLimitHz, report.achievedHz,
                    100 * report.achievedHz / max(targetHz ?? 1, 1e-9)))
        }
        if safetyEvents > 0 {
            lines.append(
                "note: the safety supervisor recorded \(safetyEvents) event(s); final state \(finalState)"
                    + (firstSafetyEvent.map { "; first: \($0)" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }
}
