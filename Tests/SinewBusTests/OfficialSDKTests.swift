import Foundation
import SinewBus
import Testing

/// A Python with `dynamixel-sdk` 4.1.0 and `feetech-servo-sdk` 1.0.0 installed: `make test` sets
/// `SINEW_PYTHON=.build/pyenv/bin/python`, the venv `make pyenv` makes from Tests/python/requirements.txt.
private let officialPython = ProcessInfo.processInfo.environment["SINEW_PYTHON"]

private func runOfficialMaster(_ kind: String, port: String) throws -> [String: Any] {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("python/official_sdk_master.py").path
    let python = try #require(officialPython)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [script, kind, port]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
}

/// The official Dynamixel SDK, unmodified, against servos that speak through Sinew's codecs on a pty.
@Test(.enabled(if: officialPython != nil, "set SINEW_PYTHON to a Python with the vendors' SDKs"))
func officialDynamixelSDKUnderstandsSinewCodecs() throws {
    let primary = try PseudoTerminalTransport.createPair()
    let servos = ScriptedBus(end: primary, protocol: .dynamixel, ids: [1, 2, 3])
    defer { servos.stop() }
    let out = try runOfficialMaster("dynamixel", port: primary.path)
    #expect((out["ping"] as? [[Int]]) == [[1200, 0, 0], [1200, 0, 0], [1200, 0, 0]])
    #expect((out["ping_missing"] as? Int) != 0)
    #expect((out["read"] as? [Int]) == [2, 0, 0])
    #expect((out["write"] as? [Int]) == [0, 0])
    #expect((out["read_back"] as? [Int]) == [0xFDFF_FF01, 0, 0])
    #expect((out["sync_write"] as? Int) == 0)
    #expect((out["sync_read"] as? Int) == 0)
    #expect((out["sync_values"] as? [Int]) == [0x1001, 0x1002, 0x1003])
    #expect((out["fast_sync_read"] as? Int) == 0)
    #expect((out["fast_values"] as? [Int]) == [0x1001, 0x1002, 0x1003])
}

/// The official Feetech SDK, unmodified, against servos that speak through Sinew's codecs on a pty.
@Test(.enabled(if: officialPython != nil, "set SINEW_PYTHON to a Python with the vendors' SDKs"))
func officialFeetechSDKUnderstandsSinewCodecs() throws {
    let primary = try PseudoTerminalTransport.createPair()
    let servos = ScriptedBus(end: primary, protocol: .feetechSTS, ids: [1, 2, 3])
    defer { servos.stop() }
    let out = try runOfficialMaster("feetech", port: primary.path)
    #expect((out["ping"] as? [[Int]]) == [[777, 0, 0], [777, 0, 0], [777, 0, 0]])
    #expect((out["read"] as? [Int]) == [2, 0, 0])
    #expect((out["write"] as? [Int]) == [0, 0])
    #expect((out["read_back"] as? [Int]) == [0x0812, 0, 0])
    #expect((out["sync_write"] as? Int) == 0)
    #expect((out["sync_read"] as? Int) == 0)
    #expect((out["sync_values"] as? [Int]) == [0x0801, 0x0802, 0x0803])
}
