import Foundation
import SinewBus

/// What a scripted bus does wrong, for the next `count` replies of servo `id`.
enum Fault: Equatable {
    case none
    case silent
    case corrupt
    case truncate
    /// Answers with another servo's ID.
    case foreign(ServoID)
    /// Sends only noise (no header) instead of the reply.
    case garbageOnly
    /// Sends noise, then the correct reply.
    case garbageBefore
    /// Sets this error byte in the reply.
    case errorByte(UInt8)
    /// Sends the correct reply, then noise 1 ms later (after the master has its replies).
    case noiseAfter
}

/// Servos behind the far end of a byte pipe, answering on their own thread from 256-byte register
/// tables, with scriptable faults. Test-only: its thread allocates freely.
final class ScriptedBus: @unchecked Sendable {
    let end: any ByteTransport
    let busProtocol: BusProtocol
    private let lock = NSLock()
    private var tables: [ServoID: [UInt8]] = [:]
    private var faultID: ServoID = 0
    private var fault = Fault.none
    private var faultCount = 0
    private var running = true
    private var thread: Thread?
    private(set) var requestsSeen = 0
    /// Noise to send after the current replies (``Fault/noiseAfter``).
    private var lateNoise: [UInt8] = []

    init(end: any ByteTransport, protocol busProtocol: BusProtocol, ids: [ServoID]) {
        self.end = end
        self.busProtocol = busProtocol
        for id in ids {
            var table = [UInt8](repeating: 0, count: 256)
            if busProtocol == .dynamixel {
                table[0] = 0xB0  // model 1200 (XL330-M288)
                table[1] = 0x04
                table[6] = 52  // firmware
            } else {
                table[0] = 3  // firmware major
                table[3] = 0x09  // model 777 (STS3215), little-endian
                table[4] = 0x03
            }
            table[132] = id  // a recognisable present position
            table[56] = id
            tables[id] = table
        }
        let t = Thread { [unowned self] in self.serve() }
        thread = t
        t.start()
    }

    func stop() {
        lock.withLock { running = false }
        (end as? BytePipeEnd)?.close()
        while thread?.isFinished == false { usleep(1000) }
    }

    func inject(_ fault: Fault, id: ServoID, count: Int = 1_000_000) {
        lock.withLock {
            self.fault = fault
            faultID = id
            faultCount = count
        }
    }

    /// `length` bytes of servo `id`'s register table from `address` (see `read`).
    func register(_ id: ServoID, _ address: Int, _ length: Int) -> [UInt8] { read(id, address, length) }

    private var isRunning: Bool { lock.withLock { running } }

    private func serve() {
        let dxl = DynamixelStreamDecoder()
        let ftc = FeetechStreamDecoder()
        var buffer = [UInt8](repeating: 0, count: 512)
        while isRunning {
            let n: Int
            do {
                n = try buffer.withUnsafeMutableBytes {
                    try end.read(into: $0, deadline: MonotonicInstant.now().advanced(byNanoseconds: 20_000_000))
                }
            } catch { return }
            if n == 0 { continue }
            var out: [UInt8] = []
            buffer[0..<n].withUnsafeBytes { bytes in
                if busProtocol == .dynamixel {
                    dxl.append(bytes)
                    while case .frame(let f) = dxl.next() { out += handleDynamixel(f) }
                } else {
                    ftc.append(bytes)
                    while case .frame(let f) = ftc.next() { out += handleFeetech(f) }
                }
            }
            if !out.isEmpty {
                try? out.withUnsafeBytes {
                    try end.write($0, deadline: MonotonicInstant.now().advanced(byNanoseconds: 100_000_000))
                }
            }
            let noise: [UInt8] = lock.withLock {
                defer { lateNoise = [] }
                return lateNoise
            }
            if !noise.isEmpty {
                usleep(1_000)
                try? noise.withUnsafeBytes {
                    try end.write($0, deadline: MonotonicInstant.now().advanced(byNanoseconds: 100_000_000))
                }
            }
        }
    }

    /// Applies the scripted fault to a reply from `id`.
    private func faulted(_ reply: [UInt8], id: ServoID, rebuild: (ServoID, UInt8) -> [UInt8]) -> [UInt8] {
        let f: Fault = lock.withLock {
            guard faultID == id, faultCount > 0, fault != .none else { return .none }
            faultCount -= 1
            return fault
        }
        switch f {
        case .none: return reply
        case .silent: return []
        case .corrupt:
            var r = reply
            r[r.count - 3] ^= 0x10
            return r
        case .truncate: return Array(reply[0..<(reply.count - 3)])
        case .foreign(let other): return rebuild(other, 0)
        case .garbageOnly: return [0x11, 0x22, 0x33, 0x44, 0x55]
        case .garbageBefore: return [0x00, 0xFF, 0x13, 0xFF, 0xFF, 0x42] + reply
        case .errorByte(let e): return rebuild(id, e)
        case .noiseAfter:
            lock.withLock { lateNoise += [0x00, 0x13, 0x42, 0x55, 0xAA] }
            return reply
        }
    }

    private func dxlStatus(_ id: ServoID, _ error: UInt8, _ params: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 2 * params.count + 32)  // room for byte stuffing
        let n = params.withUnsafeBytes { p in
            out.withUnsafeMutableBytes { try! Dynamixel.encodeStatus(id: id, error: error, parameters: p, into: $0) }
        }
        return Array(out[0..<n])
    }

    private func ftcStatus(_ id: ServoID, _ error: UInt8, _ params: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: params.count + 32)
        let n = params.withUnsafeBytes { p in
            out.withUnsafeMutableBytes { try! Feetech.encodeStatus(id: id, error: error, parameters: p, into: $0) }
        }
        return Array(out[0..<n])
    }

    private func reply(_ id: ServoID, _ params: [UInt8]) -> [UInt8] {
        let make = busProtocol == .dynamixel ? dxlStatus : ftcStatus
        return faulted(make(id, 0, params), id: id) { make($0, $1, params) }
    }

    /// `length` bytes of servo `id`'s table from `address`, as a request (the master's, any values) asks:
    /// bytes beyond the 256-byte table read as 0; a servo that does not exist has none.
    private func read(_ id: ServoID, _ address: Int, _ length: Int) -> [UInt8] {
        lock.withLock {
            guard let table = tables[id] else { return [] }
            return (address..<address + max(length, 0)).map { table.indices.contains($0) ? table[$0] : 0 }
        }
    }

    /// Writes into servo `id`'s table; bytes beyond the 256-byte table are dropped.
    private func write(_ id: ServoID, _ address: Int, _ data: UnsafeRawBufferPointer) {
        lock.withLock {
            guard var table = tables[id] else { return }
            for (k, b) in data.enumerated() where table.indices.contains(address + k) { table[address + k] = b }
            tables[id] = table
        }
    }

    private func exists(_ id: ServoID) -> Bool { lock.withLock { tables[id] != nil } }

    private func handleDynamixel(_ frame: DynamixelFrame) -> [UInt8] {
        lock.withLock { requestsSeen += 1 }
        let request = DynamixelRequest(frame)
        let id = frame.id
        switch request {
        case .ping:
            return exists(id) ? reply(id, read(id, 0, 2) + [read(id, 6, 1)[0]]) : []
        case .read(let a, let l):
            return exists(id) ? reply(id, read(id, Int(a), Int(l))) : []
        case .write(let a, let d):
            write(id, Int(a), d)
            return exists(id) ? reply(id, []) : []
        case .syncRead(let a, let l, let ids):
            return ids.filter(exists).flatMap { reply($0, read($0, Int(a), Int(l))) }
        case .fastSyncRead(let a, let l, let ids):
            let listed = ids.filter(exists)
            let errors = [UInt8](repeating: 0, count: listed.count)
            let data = listed.flatMap { read($0, Int(a), Int(l)) }
            var out = [UInt8](repeating: 0, count: 2 * (data.count + 4 * listed.count) + 32)  // with byte stuffing
            let n = listed.withUnsafeBufferPointer { i in
                errors.withUnsafeBufferPointer { e in
                    data.withUnsafeBytes { d in
                        out.withUnsafeMutableBytes {
                            try! Dynamixel.encodeFastSyncReadReply(ids: i, errors: e, length: l, data: d, into: $0)
                        }
                    }
                }
            }
            return Array(out[0..<n])
        case .syncWrite(let a, _, _):
            for (id, _) in lock.withLock({ tables }) {
                if let d = request.syncWriteData(for: id) { write(id, Int(a), d) }
            }
            return []
        case .bulkRead(let records):
            var out: [UInt8] = []
            var i = 0
            while i + 5 <= records.count {
                let id = records[i]
                if exists(id) {
                    out += reply(id, read(id, Int(records.loadUInt16(at: i + 1)), Int(records.loadUInt16(at: i + 3))))
                }
                i += 5
            }
            return out
        case .reboot, .action, .factoryReset:
            return exists(id) ? reply(id, []) : []
        default:
            return []
        }
    }

    private func handleFeetech(_ frame: FeetechFrame) -> [UInt8] {
        lock.withLock { requestsSeen += 1 }
        let request = FeetechRequest(frame)
        let id = frame.id
        switch request {
        case .ping: return exists(id) ? reply(id, []) : []
        case .read(let a, let l): return exists(id) ? reply(id, read(id, Int(a), Int(l))) : []
        case .write(let a, let d):
            write(id, Int(a), d)
            return exists(id) ? reply(id, []) : []
        case .syncRead(let a, let l, let ids):
            return ids.filter(exists).flatMap { reply($0, read($0, Int(a), Int(l))) }
        case .syncWrite(let a, _, _):
            for (id, _) in lock.withLock({ tables }) {
                if let d = request.syncWriteData(for: id) { write(id, Int(a), d) }
            }
            return []
        default: return []
        }
    }
}
