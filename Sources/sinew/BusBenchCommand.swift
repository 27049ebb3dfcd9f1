import ArgumentParser
import CRealtime
import Foundation
import SinewBus
import SinewDrivers
import SinewSim

/// `--protocol` of `sinew bench bus`.
enum BenchBusProtocol: String, ExpressibleByArgument, CaseIterable {
    case dynamixel, feetech

    var busProtocol: BusProtocol { self == .dynamixel ? .dynamixel : .feetechSTS }
    /// The servo simulated for the measurements over a pty.
    var modelName: String { self == .dynamixel ? "xl330-m288" : "sts3215" }
    /// The official Python SDK measured against the same bus.
    var sdkName: String { self == .dynamixel ? "dynamixel-sdk" : "feetech-servo-sdk" }
    /// One control cycle's registers (the same as Benchmarks/python/sdk_cycle_rate.py): Dynamixel X reads
    /// Present Current (126, 2) + Velocity (128, 4) + Position (132, 4) and writes Goal Position (116, 4);
    /// STS reads Present Position (56) through Present Current (69, 2) and writes Goal Position (42, 2).
    var readAddress: UInt16 { self == .dynamixel ? 126 : 56 }
    var readLength: Int { self == .dynamixel ? 10 : 15 }
    var writeAddress: UInt16 { self == .dynamixel ? 116 : 42 }
    var writeLength: Int { self == .dynamixel ? 4 : 2 }
}

struct BusBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract:
            "Cycles per second of a servo bus: Sinew's stack, the official Python SDK, the bare pty floor, the wire.",
        discussion: """
            One cycle = one SYNC_READ of position, velocity and current from N servos + one SYNC_WRITE of their \
            goal positions (Dynamixel X: 10 bytes read at 126, 4 written at 116; Feetech STS: 15 bytes read at \
            56, 2 written at 42). With --json, one object with these keys (and a few informative ones):

            stack_ns_per_cycle: Sinew's bus master encoding the requests and decoding N replies, in-process, no \
            wire (median of 5 runs). Goal: ≤ 2000 ns for 6 servos.

            sinew_cycles_per_s: Sinew's bus master over a pty to a virtual bus with wire timing off.

            python_sdk_cycles_per_s: the official SDK (dynamixel-sdk or feetech-servo-sdk) running \
            Benchmarks/python/sdk_cycle_rate.py against the same kind of virtual bus. Goal: Sinew ≥ 10×. Needs \
            the SDKs in .build/pyenv (`make pyenv`) or a Python named by $SINEW_PYTHON; null when missing.

            floor_cycles_per_s: a minimal termios master and a minimal responder thread on a pty, answering each \
            request with precomputed bytes of the real length. Goal: Sinew ≥ 0.7 of it.

            wire_emulated_cycles_per_s: Sinew's bus master with wire timing on, 1 Mbit/s, Return Delay Time 0.

            wire_limit_cycles_per_s: what the bytes allow at 1 Mbit/s, 10 bits per byte, Return Delay Time 0 \
            (docs/protocols.md). Goal: wire_emulated ≥ 90% of it.

            Busy polling (--busy-poll, on by default) applies to every party alike: the virtual bus (also the \
            one the SDK talks to) and the floor's responder poll instead of sleeping between packets, Sinew's bus \
            master and the floor's master poll while a reply is due. Off, each packet costs a thread wake-up on \
            each side, which on a virtual machine outweighs everything else.

            The floor and the two Sinew rates are measured in 5 alternating rounds of --seconds/5 each (median \
            reported), the SDK for --seconds; all at SCHED_FIFO 10, like the virtual bus's own thread, when the \
            system allows it (--real-time off: the default scheduler). A default run takes about 10 s.

            Example:
              sinew bench bus --protocol feetech --servos 6 --json
            """)

    @Option(name: .customLong("protocol"), help: "dynamixel (XL330-M288 servos) or feetech (STS3215 servos).")
    var busProtocol = BenchBusProtocol.dynamixel

    @Option(parsing: .unconditional, help: "Number of servos on the bus (IDs 1…N, 1-32).")
    var servos = 6

    @Option(parsing: .unconditional, help: "Duration of each cycle-rate measurement, seconds (at most 60).")
    var seconds = 2.0

    @Option(
        help: ArgumentHelp(
            "Run the measurement at SCHED_FIFO \(realTimePriority), like the virtual bus's serving thread (on|off). "
                + "Off leaves the other programs on a shared machine their CPU (the SDK busy-polls).",
            valueName: "on|off"))
    var realTime = OnOff.on

    @Option(
        help: ArgumentHelp(
            "Busy polling (on|off): Sinew's bus master, the virtual bus and the floor's two ends poll without "
                + "sleeping while a reply is due, saving a thread wake-up per packet at the price of busy cores.",
            valueName: "on|off"))
    var busyPoll = OnOff.on

    @Flag(help: "Print one JSON object (keys in --help); null for a figure that could not be measured.")
    var json = false

    static let rounds = 5
    /// With --busy-poll on and wire timing off (replies at once, whatever the wire time says): the
    /// virtual bus polls this long after traffic (longer than a cycle's gap), and the bus master from its
    /// request on (longer than the wire time its arithmetic expects).
    static let serverBusyPollNs: UInt64 = 2_000_000
    static let masterBusyPollNs: UInt64 = 5_000_000
    /// With wire timing on: both poll over this stretch around each reply's due time and sleep otherwise
    /// (spinning through every transaction on both cores would run into real-time throttling).
    static let wireTimedBusyPollNs: UInt64 = 100_000
    /// The serving thread's priority in SinewSim's VirtualBusServer.
    static let realTimePriority: Int32 = 10

    func validate() throws {
        guard (1...32).contains(servos) else { throw ValidationError("--servos must be between 1 and 32") }
        guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
    }

    func run() throws {
        let p = busProtocol
        let n = servos
        let ids = (1...n).map { ServoID($0) }
        let catalog = try ServoTables.load()
        // The servers' threads inherit this: without it every timed wait of the virtual bus (a reply due
        // in 150 µs) may oversleep by the default 50 µs slack, which the wire-timing figure would then show.
        _ = sinew_rt_set_timer_slack_ns(1)
        // The virtual bus's serving thread asks for SCHED_FIFO 10 itself. So that it has no edge over the
        // floor's responder or the Python SDK, every thread of the measurement runs at that priority when
        // the system allows it: this one, the threads it starts (the floor's responder inherits it) and the
        // SDK's process (inherits it across fork/exec).
        let realTime = self.realTime == .on && sinew_rt_set_fifo_priority(Self.realTimePriority) == 0
        defer {
            var normal = sched_param()
            pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal)
        }
        let note: (String) -> Void = json ? { _ in } : { printError($0) }

        note("bus stack alone …")
        let iterations = max(2_000, Int(seconds * 50_000))
        var stackRuns: [Double] = []
        for _ in 0..<5 {
            do {
                stackRuns.append(
                    try BusBenchmark.stackNanosecondsPerCycle(
                        protocol: p.busProtocol, servos: n, readLength: p.readLength, writeLength: p.writeLength,
                        iterations: iterations))
            } catch {
                throw CommandFailure("the in-process bus stack failed: \(error)")
            }
        }
        let stackNs = stackRuns.sorted()[2]

        // The three pty figures are measured in alternating rounds and each reported as its median, so
        // that a burst of load from other programs on the machine hits all of them alike.
        note("bare floor, Sinew over a pty virtual bus, Sinew with wire timing on (\(Self.rounds) rounds) …")
        let plain = try SinewBusRig(command: self, catalog: catalog, ids: ids, wireTiming: false)
        let timed = try SinewBusRig(command: self, catalog: catalog, ids: ids, wireTiming: true)
        var floorRuns: [Double] = []
        var sinewRuns: [Double] = []
        var wireRuns: [Double] = []
        let slice = seconds / Double(Self.rounds)
        for _ in 0..<Self.rounds {
            do {
                floorRuns.append(
                    try BusBenchmark.floorCyclesPerSecond(
                        protocol: p.busProtocol, servos: n, readLength: p.readLength, writeLength: p.writeLength,
                        seconds: slice, busyPoll: busyPoll == .on))
            } catch {
                throw CommandFailure("the bare pty floor failed: \(error)")
            }
            sinewRuns.append(plain.measure(seconds: slice))
            wireRuns.append(timed.measure(seconds: slice))
        }
        plain.stop()
        timed.stop()
        let floor = median(floorRuns)
        let sinew = (rate: median(sinewRuns), failures: plain.failures)
        let wire = (rate: median(wireRuns), failures: timed.failures)

        note("official Python SDK over a pty virtual bus …")
        let python = try measurePython(catalog: catalog, servos: n)

        let limit = BusBenchmark.wireLimitCyclesPerSecond(
            protocol: p.busProtocol, servos: n, readLength: p.readLength, writeLength: p.writeLength,
            baudRate: 1_000_000, returnDelayMicroseconds: 0)
        let limitPositionOnly = BusBenchmark.wireLimitCyclesPerSecond(
            protocol: p.busProtocol, servos: n, readLength: p == .dynamixel ? 4 : 2, writeLength: p.writeLength,
            baudRate: 1_000_000, returnDelayMicroseconds: 0)

        let pythonRate = python.cyclesPerSecond
        let vsPython = pythonRate.map { sinew.rate / $0 }
        let vsFloor = sinew.rate / floor
        let ofWire = wire.rate / limit
        if json {
            print(
                JSONValue.object([
                    ("stack_ns_per_cycle", .number(stackNs.rounded1)),
                    ("sinew_cycles_per_s", .number(sinew.rate.rounded1)),
                    ("python_sdk_cycles_per_s", pythonRate.map { .number($0.rounded1) } ?? .null),
                    ("floor_cycles_per_s", .number(floor.rounded1)),
                    ("wire_emulated_cycles_per_s", .number(wire.rate.rounded1)),
                    ("wire_limit_cycles_per_s", .number(limit.rounded1)),
                    ("protocol", .string(p.rawValue)), ("model", .string(p.modelName)), ("servos", .integer(n)),
                    ("read_bytes_per_servo", .integer(p.readLength)),
                    ("write_bytes_per_servo", .integer(p.writeLength)),
                    ("seconds_per_measurement", .number(seconds)), ("real_time_scheduling", .bool(realTime)),
                    ("busy_poll", .bool(busyPoll == .on)),
                    ("sinew_vs_python_sdk", vsPython.map { .number(($0 * 100).rounded() / 100) } ?? .null),
                    ("sinew_vs_floor", .number((vsFloor * 1000).rounded() / 1000)),
                    ("wire_emulated_vs_limit", .number((ofWire * 1000).rounded() / 1000)),
                    ("sinew_failed_cycles", .integer(sinew.failures)),
                    ("wire_emulated_failed_cycles", .integer(wire.failures)),
                    ("python_sdk_errors", python.errors.map { .integer($0) } ?? .null),
                    ("python_sdk_note", python.note.map { .string($0) } ?? .null),
                    ("wire_limit_position_only_cycles_per_s", .number(limitPositionOnly.rounded1)),
                ]).text)
            return
        }
        func verdict(_ ok: Bool) -> String { ok ? "met" : "NOT met" }
        func row(_ label: String, _ value: String, _ comment: String = "") {
            let padded = label.count < 50 ? label + String(repeating: " ", count: 50 - label.count) : label + " "
            print("  " + padded + value + (comment.isEmpty ? "" : "   " + comment))
        }
        func rate(_ x: Double) -> String { String(format: "%8.0f cycles/s", x) }
        print(
            "\(p.rawValue) bus, \(n) virtual \(p.modelName) servos at 1 Mbit/s; one cycle = SYNC_READ of "
                + "\(p.readLength) bytes at \(p.readAddress) + SYNC_WRITE of \(p.writeLength) bytes at \(p.writeAddress)"
        )
        row(
            "bus stack alone (encode + decode, no wire)", String(format: "%8.0f ns/cycle", stackNs),
            "goal ≤ 2000 ns: " + verdict(stackNs <= 2000))
        row("Sinew bus master, pty virtual bus", rate(sinew.rate))
        if let pythonRate, let vsPython {
            row(
                "official Python SDK (\(p.sdkName)), same bus", rate(pythonRate),
                String(format: "Sinew %.1f×", vsPython) + ", goal ≥ 10×: " + verdict(vsPython >= 10))
        } else {
            row("official Python SDK (\(p.sdkName))", "not measured: " + (python.note ?? "unknown reason"))
        }
        row(
            "bare floor (minimal termios master + responder)", rate(floor),
            String(format: "Sinew %.2f of it", vsFloor) + ", goal ≥ 0.7: " + verdict(vsFloor >= 0.7))
        row("Sinew, wire timing on (1 Mbit/s, return delay 0)", rate(wire.rate))
        row(
            "wire limit from the bytes", rate(limit),
            String(format: "achieved %.1f%%", 100 * ofWire) + ", goal ≥ 90%: " + verdict(ofWire >= 0.9))
        print(
            realTime
                ? "  (every thread and the SDK process at SCHED_FIFO \(Self.realTimePriority), timer slack 1 ns)"
                : self.realTime == .off
                    ? "  (default scheduler, --real-time off; the virtual bus's own thread may still have SCHED_FIFO)"
                    : "  (default scheduler: SCHED_FIFO refused; the virtual bus's own thread may still have it)")
        print(
            busyPoll == .on
                ? "  (busy polling on every side, the SDK's virtual bus included; --busy-poll off: sleeping waits)"
                : "  (no busy polling: every packet costs a thread wake-up on each side)")
        if sinew.failures + wire.failures > 0 {
            print("  failed cycles (not counted): \(sinew.failures) without wire timing, \(wire.failures) with")
        }
    }

    /// A virtual bus of `ids.count` servos of the protocol's model on a new pty, Return Delay Time 0.
    func serveBus(catalog: ServoCatalog, servos: Int, wireTiming: Bool) throws -> VirtualBusServer {
        do {
            let bus = try VirtualBus.make(
                catalog: catalog, protocolName: busProtocol.rawValue, modelName: busProtocol.modelName,
                ids: "1-\(servos)", baudRate: 1_000_000, wireTiming: wireTiming)
            for servo in bus.servos { servo.setRegisterValue(named: "Return Delay Time", 0) }
            return try VirtualBusServer.servePseudoTerminal(
                bus: bus,
                busyPollNanoseconds: busyPoll == .off
                    ? 0 : wireTiming ? Self.wireTimedBusyPollNs : Self.serverBusyPollNs)
        } catch let error as VirtualBusServerError {
            throw CommandFailure(error.description)
        } catch {
            throw CommandFailure("cannot build the virtual bus: \(error)")
        }
    }

    struct PythonResult {
        var cyclesPerSecond: Double?
        var errors: Int?
        var note: String?
    }

    /// Runs the official SDK's cycle in a Python subprocess against a fresh virtual bus.
    func measurePython(catalog: ServoCatalog, servos: Int) throws -> PythonResult {
        let install = "install it with `make pyenv` (into .build/pyenv) or set SINEW_PYTHON"
        guard let python = Checkout.python else {
            return PythonResult(note: "no Python with \(busProtocol.sdkName) found: \(install)")
        }
        guard let root = Checkout.root,
            FileManager.default.fileExists(atPath: root + "/Benchmarks/python/sdk_cycle_rate.py")
        else {
            return PythonResult(note: "Benchmarks/python/sdk_cycle_rate.py not found (run from a Sinew checkout)")
        }
        let server = try serveBus(catalog: catalog, servos: servos, wireTiming: false)
        defer { server.stop() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            root + "/Benchmarks/python/sdk_cycle_rate.py", "--protocol", busProtocol.rawValue, "--port",
            server.path ?? "", "--ids", "1-\(servos)", "--baud", "1000000", "--seconds", String(seconds),
        ]
        let out = Pipe()
        // Standard error to a file: the child can never block on a full pipe while stdout is read.
        let errPath = NSTemporaryDirectory() + "sinew-bench-bus-\(getpid()).err"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        guard let err = FileHandle(forWritingAtPath: errPath) else {
            throw CommandFailure("cannot create \(errPath)")
        }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return PythonResult(note: "cannot run \(python): \(error)")
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? err.close()
        let errData = FileManager.default.contents(atPath: errPath) ?? Data()
        let stderrText = String(decoding: errData, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            if stderrText.contains("ModuleNotFoundError") || stderrText.contains("No module named") {
                return PythonResult(note: "\(busProtocol.sdkName) is not installed for \(python): \(install)")
            }
            let lastLine =
                stderrText.split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
            return PythonResult(note: "the SDK benchmark failed: \(lastLine)")
        }
        let line = String(decoding: outData, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let rate = (object["cycles_per_s"] as? NSNumber)?.doubleValue
        else {
            return PythonResult(note: "unreadable output from the SDK benchmark: \(line)")
        }
        let errors = (object["errors"] as? NSNumber)?.intValue
        return PythonResult(
            cyclesPerSecond: rate, errors: errors,
            note: errors.map { $0 > 0 ? "\($0) SDK transactions failed" : nil } ?? nil)
    }
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// Sinew's bus master on a pty to a served virtual bus, for repeated cycle-rate measurements.
final class SinewBusRig {
    let server: VirtualBusServer
    let bus: BusMaster
    let ids: [ServoID]
    let p: BenchBusProtocol
    var failures = 0

    init(command: BusBench, catalog: ServoCatalog, ids: [ServoID], wireTiming: Bool) throws {
        server = try command.serveBus(catalog: catalog, servos: ids.count, wireTiming: wireTiming)
        let transport: PseudoTerminalTransport
        do {
            transport = try PseudoTerminalTransport(path: server.path ?? "", baudRate: 1_000_000)
        } catch {
            server.stop()
            throw CommandFailure("cannot open the virtual bus's pty: \(error)")
        }
        p = command.busProtocol
        self.ids = ids
        // Return Delay Time 0 on the servos; a wide margin so that a loaded machine costs rate, not failures.
        bus = BusMaster(
            transport: transport, protocol: p.busProtocol,
            timing: BusTiming(
                returnDelayMicroseconds: 0, marginNanoseconds: 20_000_000, retries: 1,
                busyPollNanoseconds: command.busyPoll == .off
                    ? 0 : wireTiming ? BusBench.wireTimedBusyPollNs : BusBench.masterBusyPollNs))
        // Warm-up: first-touch page faults, the server's first replies.
        _ = measure(seconds: 0.05)
        failures = 0
    }

    /// Cycles per second over about `seconds`; failed cycles are added to ``failures``.
    func measure(seconds: Double) -> Double {
        let result = BusBenchmark.cyclesPerSecond(
            bus: bus, ids: ids, readAddress: p.readAddress, readLength: p.readLength, writeAddress: p.writeAddress,
            writeLength: p.writeLength, seconds: seconds)
        failures += result.failures
        return result.cyclesPerSecond
    }

    func stop() { server.stop() }
}
