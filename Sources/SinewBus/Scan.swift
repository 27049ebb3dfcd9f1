/// One servo found by a scan.
public struct ScanResult: Sendable, Equatable {
    /// The port path the servo answered on.
    public var port: String
    public var busProtocol: BusProtocol
    /// The line rate it answered at, bit/s.
    public var baudRate: Int
    public var id: ServoID
    public var modelNumber: UInt16
    public var firmwareVersion: UInt8?

    public init(
        port: String, busProtocol: BusProtocol, baudRate: Int, id: ServoID, modelNumber: UInt16, firmwareVersion: UInt8?
    ) {
        self.port = port
        self.busProtocol = busProtocol
        self.baudRate = baudRate
        self.id = id
        self.modelNumber = modelNumber
        self.firmwareVersion = firmwareVersion
    }
}

/// Where a scan is, for a progress display.
public struct ScanProgress: Sendable, Equatable {
    public var port: String
    public var busProtocol: BusProtocol
    public var baudRate: Int
    /// The ID just probed.
    public var id: ServoID
    /// Probes done and planned on this port and protocol (IDs × baud rates).
    public var probesDone: Int
    public var probesTotal: Int
    /// Servos found so far on this port and protocol.
    public var found: Int
}

extension BusProtocol {
    /// The rates a servo of this protocol can be set to, most likely first (factory default first).
    public var scanBaudRates: [Int] {
        switch self {
        case .dynamixel: return [57_600, 1_000_000, 115_200, 2_000_000, 3_000_000, 4_000_000, 9_600, 4_500_000]
        case .feetechSTS, .feetechSCS: return [1_000_000, 500_000, 250_000, 128_000, 115_200, 76_800, 57_600, 38_400]
        }
    }
}

extension BusMaster {
    /// PINGs every ID in `ids` at every rate in `baudRates` (the transport's rate is changed, and left at
    /// the last one). Each probe is one ping with its normal deadline and at most one retry when bytes
    /// arrived damaged. `progress` is called after each probe; return false to stop early.
    /// Throws only when the transport fails.
    public func scan(
        ids: ClosedRange<ServoID> = 0...252, baudRates: [Int], portName: String = "",
        progress: (ScanProgress) -> Bool = { _ in true }
    ) throws(TransportError) -> [ScanResult] {
        var found: [ScanResult] = []
        let total = ids.count * baudRates.count
        var done = 0
        let savedRetries = timing.retries
        timing.retries = 0
        defer { timing.retries = savedRetries }
        for baud in baudRates {
            try transport.setBaudRate(baud)
            for id in ids {
                var attempts = 0
                probe: while attempts < 2 {
                    attempts += 1
                    do throws(BusError) {
                        let reply = try ping(id)
                        found.append(
                            ScanResult(
                                port: portName, busProtocol: busProtocol, baudRate: baud, id: id,
                                modelNumber: reply.modelNumber, firmwareVersion: reply.firmwareVersion))
                        break probe
                    } catch {
                        if case .transport(let t) = error.cause { throw t }
                        if case .disconnected(let e) = error.cause { throw TransportError.disconnected(errno: e) }
                        // A status error still proves a servo is there, but ping never returns one with data
                        // we could use; damaged bytes deserve one more try, silence does not.
                        if case .timeout = error.cause { break probe }
                        if !error.isRetryable { break probe }
                    }
                }
                done += 1
                let p = ScanProgress(
                    port: portName, busProtocol: busProtocol, baudRate: baud, id: id, probesDone: done,
                    probesTotal: total,
                    found: found.count)
                if !progress(p) { return found }
            }
        }
        return found
    }
}

/// Scanning ports for servos: the library side of `sinew scan`.
public enum BusScan {
    /// Opens `path` as a serial port through libserialport, or, when libserialport refuses it (a
    /// pseudo-terminal such as a `sinew virtual-bus`), through termios.
    public static func openTransport(path: String, baudRate: Int = 1_000_000) throws(TransportError)
        -> any ByteTransport
    {
        do throws(TransportError) {
            return try SerialPortTransport(path: path, baudRate: baudRate)
        } catch {
            if case .unsupportedBaudRate = error { throw error }
            return try PseudoTerminalTransport(path: path, baudRate: baudRate)
        }
    }

    /// Scans `port` (every serial port the system lists when nil) for servos of each protocol in
    /// `protocols`, at `baudRates` (each protocol's ``BusProtocol/scanBaudRates`` when nil), IDs `ids`.
    /// Ports that cannot be opened are skipped when scanning all ports, and throw when named.
    /// `warnings` receives adapter problems worth fixing (e.g. an FTDI latency timer above 1 ms).
    public static func scan(
        port: String? = nil, protocols: [BusProtocol] = [.dynamixel, .feetechSTS], baudRates: [Int]? = nil,
        ids: ClosedRange<ServoID> = 0...252, timing: BusTiming = BusTiming(retries: 0),
        warnings: (String) -> Void = { _ in }, progress: (ScanProgress) -> Bool = { _ in true }
    ) throws(TransportError) -> [ScanResult] {
        let paths: [String]
        if let port { paths = [port] } else { paths = try SerialPortTransport.list().map(\.path) }
        var results: [ScanResult] = []
        for path in paths {
            let transport: any ByteTransport
            do throws(TransportError) {
                transport = try openTransport(path: path)
            } catch {
                if port != nil { throw error }
                warnings("\(path): cannot open (\(error)), skipped")
                continue
            }
            if let serial = transport as? SerialPortTransport, let warning = serial.latencyWarning { warnings(warning) }
            for p in protocols {
                let bus = BusMaster(transport: transport, protocol: p, timing: timing)
                results += try bus.scan(
                    ids: ids, baudRates: baudRates ?? p.scanBaudRates, portName: path, progress: progress)
            }
        }
        return results
    }
}
