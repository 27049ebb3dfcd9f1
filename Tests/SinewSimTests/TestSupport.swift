import Foundation
import SinewBus
import SinewDrivers
import SinewSim

/// `<repo root>/Hardware/servos`, found from this file's path.
let servoTableDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("Hardware/servos").path
}()

func loadModel(_ name: String) throws -> ServoModel {
    try ServoCatalog.loadModel(file: servoTableDirectory + "/\(name).json")
}

/// A decoded reply, copied out of the decoder.
struct Reply: Equatable {
    var id: UInt8
    var error: UInt8
    var parameters: [UInt8]

    /// The first two parameter bytes, little-endian; nil when the reply carries fewer.
    var uint16: Int? {
        guard parameters.count >= 2 else { return nil }
        return Int(parameters[0]) | Int(parameters[1]) << 8
    }
    /// The first four parameter bytes, little-endian; nil when the reply carries fewer.
    var int32: Int32? {
        guard parameters.count >= 4 else { return nil }
        return Int32(
            bitPattern: UInt32(parameters[0]) | UInt32(parameters[1]) << 8 | UInt32(parameters[2]) << 16
                | UInt32(parameters[3]) << 24)
    }
}

/// Plays the host: encodes requests with SinewBus, feeds the bus, decodes replies with SinewBus.
final class TestHost {
    let bus: VirtualBus
    var nowNs: UInt64
    let dynamixel: Bool
    let dynamixelDecoder = DynamixelStreamDecoder(capacity: 4096)
    let feetechDecoder = FeetechStreamDecoder(capacity: 1024)
    var rawReplies: [UInt8] = []

    init(model: String, ids: [UInt8], configure: (inout VirtualBusOptions) -> Void = { _ in }) throws {
        let servoModel = try loadModel(model)
        var options = VirtualBusOptions()
        configure(&options)
        bus = try VirtualBus(model: servoModel, ids: ids, options: options, startNs: 1_000_000_000)
        nowNs = 1_000_000_000
        dynamixel = servoModel.wireProtocol == .dynamixel2
    }

    func packet(_ encode: (UnsafeMutableRawBufferPointer) throws(CodecError) -> Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 1024)
        let count = bytes.withUnsafeMutableBytes { try! encode($0) }
        return Array(bytes[0..<count])
    }

    /// Sends `request` now, then lets `waitNs` pass and returns every reply that arrived.
    @discardableResult
    func exchange(_ request: [UInt8], waitNs: UInt64 = 20_000_000) -> [Reply] {
        bus.receive(request, atNs: nowNs)
        nowNs += waitNs
        bus.advance(toNs: nowNs)
        return collect(upToNs: nowNs)
    }

    func collect(upToNs: UInt64) -> [Reply] {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { bus.readReplies(upToNs: upToNs, into: $0) }
        rawReplies = Array(buffer[0..<count])
        var replies: [Reply] = []
        rawReplies.withUnsafeBytes { bytes in
            if dynamixel {
                dynamixelDecoder.append(bytes)
                while case .frame(let frame) = dynamixelDecoder.next() {
                    replies.append(Reply(id: frame.id, error: frame.statusError, parameters: Array(frame.parameters)))
                }
            } else {
                feetechDecoder.append(bytes)
                while case .frame(let frame) = feetechDecoder.next() {
                    replies.append(Reply(id: frame.id, error: frame.code, parameters: Array(frame.parameters)))
                }
            }
        }
        return replies
    }

    /// Lets simulated time pass without traffic.
    func wait(seconds: Double) {
        nowNs += UInt64(seconds * 1e9)
        bus.advance(toNs: nowNs)
    }

    // Dynamixel shorthands.
    func ping(_ id: UInt8) -> [Reply] {
        exchange(
            dynamixel
                ? packet { out throws(CodecError) in try Dynamixel.encodePing(id: id, into: out) }
                : packet { out throws(CodecError) in try Feetech.encodePing(id: id, into: out) })
    }

    func read(_ id: UInt8, _ address: Int, _ length: Int) -> [Reply] {
        exchange(
            dynamixel
                ? packet { out throws(CodecError) in
                    try Dynamixel.encodeRead(id: id, address: UInt16(address), length: UInt16(length), into: out)
                }
                : packet { out throws(CodecError) in
                    try Feetech.encodeRead(id: id, address: UInt8(address), length: UInt8(length), into: out)
                })
    }

    func write(_ id: UInt8, _ address: Int, _ data: [UInt8], instruction: Instruction = .write) -> [Reply] {
        exchange(
            data.withUnsafeBytes { bytes in
                dynamixel
                    ? packet { out throws(CodecError) in
                        try Dynamixel.encodeWrite(
                            id: id, address: UInt16(address), data: bytes, instruction: instruction, into: out)
                    }
                    : packet { out throws(CodecError) in
                        try Feetech.encodeWrite(
                            id: id, address: UInt8(address), data: bytes, instruction: instruction, into: out)
                    }
            })
    }

    func syncRead(_ ids: [UInt8], _ address: Int, _ length: Int, fast: Bool = false) -> [Reply] {
        exchange(
            ids.withUnsafeBufferPointer { list in
                dynamixel
                    ? packet { out throws(CodecError) in
                        try Dynamixel.encodeSyncRead(
                            address: UInt16(address), length: UInt16(length), ids: list,
                            instruction: fast ? .fastSyncRead : .syncRead, into: out)
                    }
                    : packet { out throws(CodecError) in
                        try Feetech.encodeSyncRead(address: UInt8(address), length: UInt8(length), ids: list, into: out)
                    }
            })
    }

    func syncWrite(_ ids: [UInt8], _ address: Int, _ length: Int, _ data: [UInt8]) -> [Reply] {
        exchange(
            ids.withUnsafeBufferPointer { list in
                data.withUnsafeBytes { bytes in
                    dynamixel
                        ? packet { out throws(CodecError) in
                            try Dynamixel.encodeSyncWrite(
                                address: UInt16(address), length: UInt16(length), ids: list, data: bytes, into: out)
                        }
                        : packet { out throws(CodecError) in
                            try Feetech.encodeSyncWrite(
                                address: UInt8(address), length: UInt8(length), ids: list, data: bytes, into: out)
                        }
                }
            })
    }
}

func le32(_ value: Int32) -> [UInt8] {
    let bits = UInt32(bitPattern: value)
    return [UInt8(bits & 0xFF), UInt8(bits >> 8 & 0xFF), UInt8(bits >> 16 & 0xFF), UInt8(bits >> 24)]
}

func le16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF)] }
