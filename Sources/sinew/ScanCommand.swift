import ArgumentParser
import Foundation
import SinewBus
import SinewDrivers
import SinewSim

struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Find the servos on a serial port, a pseudo-terminal or a `sinew virtual-bus`.",
        discussion: """
            Without --port, lists the serial ports the system knows (path, USB VID:PID, serial number, \
            description) and scans each. Each probe is one PING per ID and rate; a missing servo costs its \
            reply deadline (wire time + Return Delay Time 500 µs + --margin-ms), so a full scan of IDs 0-252 at \
            every rate of both protocols takes about 15 s per serial port (over a minute on a pseudo-terminal): \
            narrow it with --protocol, --baud and --ids when you know them. Progress goes to standard error; the servos found (ID, model from \
            Hardware/servos when the model number is known, model number, firmware version) to standard output.

            Dynamixel rates tried with --baud all: 57600 (factory default), 1000000, 115200, 2000000, 3000000, \
            4000000, 9600, 4500000. Feetech: 1000000 (factory default), 500000, 250000, 128000, 115200, 76800, \
            57600, 38400.

            Examples:
              sinew scan
              sinew scan --port /dev/ttyACM0 --protocol feetech --baud 1000000
              sinew scan --port /tmp/so101 --protocol feetech --baud 1000000 --ids 1-6
            """)

    @Option(help: "Port to scan: a device (/dev/ttyUSB0, /dev/serial/by-id/…), a pty or a virtual-bus link.")
    var port: String?

    @Option(name: .customLong("protocol"), help: "dynamixel, feetech or all.")
    var busProtocol = "all"

    @Option(help: "Rate(s) in bit/s to try, e.g. 1000000 or 57600,1000000; all = every rate of the protocol.")
    var baud = "all"

    @Option(help: "IDs to probe, e.g. 1-6, 1,3,5 or 1-3,7.")
    var ids = "0-252"

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Extra wait per probe beyond wire time and Return Delay Time, ms (default: 3 for serial ports, 20 for "
                + "pseudo-terminals, where a program on a possibly busy machine answers).",
            valueName: "ms"))
    var marginMs: Double?

    @Flag(help: "Print one JSON array of the servos found: port, protocol, baud, id, model, model_number, firmware.")
    var json = false

    func protocols() throws -> [BusProtocol] {
        if busProtocol.lowercased() == "all" { return [.dynamixel, .feetechSTS] }
        guard let p = BusProtocol(rawValue: busProtocol.lowercased()) else {
            throw ValidationError("unknown protocol '\(busProtocol)' (expected dynamixel, feetech or all)")
        }
        return [p]
    }

    /// nil means every rate of each protocol. Only rates a servo of the chosen protocols can be set to: a
    /// probe at any other rate cannot find anything, and at very low rates one probe would take minutes.
    func baudRates() throws -> [Int]? {
        if baud.lowercased() == "all" { return nil }
        let protocols = try protocols()
        let supported = protocols.map { p in
            "\(p.rawValue): " + p.scanBaudRates.sorted().map(String.init).joined(separator: ", ")
        }
        var rates: [Int] = []
        for item in baud.split(separator: ",") {
            guard let rate = Int(item), protocols.contains(where: { $0.scanBaudRates.contains(rate) }) else {
                throw ValidationError(
                    "invalid baud rate '\(item)': expected a rate the servos support (\(supported.joined(separator: "; "))), "
                        + "or all")
            }
            rates.append(rate)
        }
        guard !rates.isEmpty else { throw ValidationError("invalid baud rate '\(baud)'") }
        return rates
    }

    /// The rates to try for protocol `p`: the given ones its servos support, or all of its rates.
    static func rates(for p: BusProtocol, _ rates: [Int]?) -> [Int] {
        rates?.filter(p.scanBaudRates.contains) ?? p.scanBaudRates
    }

    /// The ID list as contiguous ranges, in order.
    func idRanges() throws -> [ClosedRange<ServoID>] {
        let list: [UInt8]
        do {
            list = try ServoIDList.parse(ids).sorted()
        } catch {
            throw ValidationError(error.description)
        }
        var ranges: [ClosedRange<ServoID>] = []
        for id in list {
            if let last = ranges.last, last.upperBound &+ 1 == id {
                ranges[ranges.count - 1] = last.lowerBound...id
            } else {
                ranges.append(id...id)
            }
        }
        return ranges
    }

    func validate() throws {
        _ = try protocols()
        _ = try baudRates()
        _ = try idRanges()
        if let marginMs, !(marginMs >= 0 && marginMs <= 10_000) {
            throw ValidationError("--margin-ms must be between 0 and 10000")
        }
    }

    func run() throws {
        let protocols = try protocols()
        let rates = try baudRates()
        let ranges = try idRanges()
        let idCount = ranges.reduce(0) { $0 + $1.count }
        let catalog = ServoTables.loadIfPresent()
        // Port listing goes where it does not spoil the JSON.
        let toStandardError = json
        func say(_ line: String) {
            if toStandardError { printError(line) } else { print(line) }
        }

        let paths: [String]
        if let port {
            paths = [port]
        } else {
            let ports: [SerialPortInfo]
            do {
                ports = try SerialPortTransport.list()
            } catch {
                throw CommandFailure("cannot list the serial ports: \(error)")
            }
            if ports.isEmpty {
                say("No serial ports found. Plug in the servo adapter, or give --port PATH (a pty or a virtual bus).")
            } else {
                say("Serial ports:")
                for info in ports { say("  " + Self.describe(info)) }
            }
            paths = ports.map(\.path)
        }

        let progress = ScanProgressDisplay()
        var found: [ScanResult] = []
        for path in paths {
            let transport: any ByteTransport
            do throws(TransportError) {
                transport = try BusScan.openTransport(path: path)
            } catch {
                if port != nil { throw CommandFailure("cannot open \(path): \(Self.describe(error))") }
                printError("\(path): cannot open (\(Self.describe(error))), skipped")
                continue
            }
            if let serial = transport as? SerialPortTransport, let warning = serial.latencyWarning {
                printError("warning: " + warning)
            }
            let margin = marginMs ?? (transport is PseudoTerminalTransport ? 20 : 3)
            let timing = BusTiming(marginNanoseconds: UInt64(margin * 1e6), retries: 0)
            let total = protocols.reduce(0) { $0 + Self.rates(for: $1, rates).count } * idCount
            var done = 0
            portScan: for p in protocols {
                let bus = BusMaster(transport: transport, protocol: p, timing: timing)
                for rate in Self.rates(for: p, rates) {
                    progress.begin(path: path, protocol: p, baudRate: rate)
                    var foundHere = 0
                    for range in ranges {
                        let before = done
                        do throws(TransportError) {
                            let results = try bus.scan(ids: range, baudRates: [rate], portName: path) { step in
                                done = before + step.probesDone
                                progress.update(id: step.id, done: done, total: total, found: foundHere + step.found)
                                return true
                            }
                            foundHere += results.count
                            found += results
                        } catch {
                            if case .unsupportedBaudRate = error {
                                printError("\(path): the adapter refuses \(rate) bit/s, skipped")
                                done = before + range.count
                                continue
                            }
                            progress.end(found: foundHere)
                            if port != nil { throw CommandFailure("\(path): \(Self.describe(error))") }
                            printError("\(path): \(Self.describe(error)), rest of this port skipped")
                            break portScan
                        }
                    }
                    progress.end(found: foundHere)
                }
            }
        }

        if json {
            print(JSONValue.array(found.map { Self.json($0, catalog: catalog) }).text)
            return
        }
        if paths.isEmpty { return }
        if found.isEmpty {
            print(
                "No servos found. Check power and wiring, the protocol and rate (--protocol, --baud all), "
                    + "and that no other program holds the port.")
            return
        }
        print(Self.table(found, catalog: catalog))
        print("\(found.count) servo\(found.count == 1 ? "" : "s") found.")
    }

    static func describe(_ info: SerialPortInfo) -> String {
        var parts = [info.path]
        if let vid = info.usbVendorID, let pid = info.usbProductID {
            parts.append("USB " + hex4(vid) + ":" + hex4(pid))
        } else if !info.isUSB {
            parts.append("(not USB)")
        }
        if let serial = info.usbSerialNumber, !serial.isEmpty { parts.append("serial \(serial)") }
        var description = info.description
        if let maker = info.usbManufacturer, !maker.isEmpty, !description.contains(maker) {
            description += " (\(maker))"
        }
        if !description.isEmpty { parts.append(description) }
        return parts.joined(separator: "  ")
    }

    static func describe(_ error: TransportError) -> String {
        switch error {
        case .inUse(let what):
            return "\(what) is in use by another program (a running `sinew run`?): one master per bus"
        case .serialPort(_, _, let message) where !message.isEmpty: return message
        default: return error.description
        }
    }

    static func hex4(_ v: UInt16) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    static func modelName(_ r: ScanResult, catalog: ServoCatalog?) -> String? {
        catalog?.model(number: r.modelNumber, protocol: r.busProtocol)?.name
    }

    static func json(_ r: ScanResult, catalog: ServoCatalog?) -> JSONValue {
        .object([
            ("port", .string(r.port)), ("protocol", .string(r.busProtocol.rawValue)), ("baud", .integer(r.baudRate)),
            ("id", .integer(Int(r.id))), ("model", modelName(r, catalog: catalog).map { .string($0) } ?? .null),
            ("model_number", .integer(Int(r.modelNumber))),
            ("firmware", r.firmwareVersion.map { .integer(Int($0)) } ?? .null),
        ])
    }

    static func table(_ results: [ScanResult], catalog: ServoCatalog?) -> String {
        let header = ["PORT", "PROTOCOL", "BAUD", "ID", "MODEL", "MODEL#", "FIRMWARE"]
        let rows = results.map { r in
            [
                r.port, r.busProtocol.rawValue, String(r.baudRate), String(r.id),
                modelName(r, catalog: catalog) ?? "unknown", String(r.modelNumber),
                r.firmwareVersion.map { String($0) } ?? "-",
            ]
        }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

/// Scan progress on standard error: one updating line on a terminal, one line per port/protocol/rate
/// otherwise (logs, tests).
final class ScanProgressDisplay {
    let interactive = isatty(STDERR_FILENO) != 0
    var label = ""
    var lastDrawNs: UInt64 = 0

    func begin(path: String, protocol p: BusProtocol, baudRate: Int) {
        label = "\(path): \(p.rawValue) at \(baudRate) bit/s"
        if !interactive { printError("scanning \(label)") }
    }

    func update(id: ServoID, done: Int, total: Int, found: Int) {
        guard interactive else { return }
        let now = MonotonicInstant.now().nanoseconds
        if now &- lastDrawNs < 50_000_000 && done < total { return }
        lastDrawNs = now
        writeStandardError("\r\u{1B}[Kscanning \(label), ID \(id) (\(done)/\(total) probes, \(found) found)")
    }

    func end(found: Int) {
        if interactive {
            writeStandardError("\r\u{1B}[K")
            if found > 0 { printError("\(label): \(found) found") }
        } else {
            printError("  \(found) found")
        }
    }
}
