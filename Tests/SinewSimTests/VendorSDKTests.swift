import Foundation
import SinewDrivers
import SinewSim
import SinewTestSupport
import Testing

/// The vendors' official Python SDKs, unmodified, against the virtual bus served on a pseudo-terminal
/// (Tests/python/sdk_against_virtual_bus.py), from the environment `make pyenv` installs into `.build/pyenv`.
@Suite(.serialized) struct VendorSDKTests {
    @Test(arguments: [
        ("dynamixel", "xl330-m288"), ("dynamixel", "xl330-m077"), ("dynamixel", "xm430-w350"), ("feetech", "sts3215"),
    ])
    func officialSDKDrivesTheVirtualBus(protocolName: String, modelName: String) throws {
        let python = try testPython(importing: ["dynamixel_sdk", "scservo_sdk"])
        let model = try loadModel(modelName)
        let bus = try VirtualBus(model: model, ids: [1, 2, 3, 4, 5, 6])
        let server = try VirtualBusServer.servePseudoTerminal(bus: bus)
        defer { server.stop() }
        let port = try #require(server.path)
        let script = repositoryRoot + "/Tests/python/sdk_against_virtual_bus.py"
        let result = try PythonEnvironment.run(
            python,
            arguments: [
                script, "--protocol", protocolName, "--port", port, "--ids", "1-6", "--baud", "1000000",
                "--model-number", String(model.modelNumber),
            ], timeoutSeconds: 120)
        let busState = server.withBus { "bus: \($0.statistics), host rate \($0.hostBaudRate)" }
        #expect(result.status == 0, "vendor SDK checks failed:\n\(result.output)\n\(busState)")
        #expect(result.output.contains(" passed, 0 failed"), "\(result.output)")
    }
}

/// Every documented register of every shipped servo table, walked with the vendor's official SDK against one
/// virtual servo of that model (Tests/python/register_walk.py): each READ answers with the register's bytes,
/// every writable register takes back its value, a read-only register is refused (Dynamixel: Access Error) or
/// acknowledged and kept (Feetech, whose status byte cannot say otherwise), a value out of range is refused
/// with Data Range or Data Limit, and reads past the table, writes between registers, of part of a register
/// or to EEPROM with torque on answer with their error — never silence, never a write silently dropped.
@Suite(.serialized) struct RegisterWalkTests {
    static let models: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: servoTableDirectory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }()

    @Test func everyShippedTableIsWalked() {
        #expect(Self.models == ["sts3215", "sts3250", "xl330-m077", "xl330-m288", "xl430-w250", "xm430-w350"])
    }

    @Test(arguments: RegisterWalkTests.models)
    func vendorSDKWalksEveryRegister(modelName: String) throws {
        let python = try testPython(importing: ["dynamixel_sdk", "scservo_sdk"])
        let model = try loadModel(modelName)
        let bus = try VirtualBus(model: model, ids: [1])
        let server = try VirtualBusServer.servePseudoTerminal(bus: bus)
        defer { server.stop() }
        let port = try #require(server.path)
        let result = try PythonEnvironment.run(
            python,
            arguments: [
                repositoryRoot + "/Tests/python/register_walk.py", "--protocol",
                model.wireProtocol == .dynamixel2 ? "dynamixel" : "feetech", "--port", port, "--table",
                servoTableDirectory + "/\(modelName).json", "--id", "1", "--baud", "1000000",
            ], timeoutSeconds: 300)
        #expect(result.status == 0, "register walk failed:\n\(result.output)")
        #expect(result.output.contains("\(model.registers.count) registers, "), "\(result.output)")
        #expect(result.output.contains(" passed, 0 failed"), "\(result.output)")
    }
}

/// Runs the test environment's Python (`testPython`, made by `make pyenv`) with a time bound.
enum PythonEnvironment {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs a program, returning its exit status and combined output; kills it after the timeout.
    static func run(_ executable: String, arguments: [String], timeoutSeconds: Double) throws -> (
        status: Int32, output: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        var output = Data()
        let reader = pipe.fileHandleForReading
        let collected = DispatchSemaphore(value: 0)
        let box = OutputBox()
        DispatchQueue.global().async {
            box.data = reader.readDataToEndOfFile()
            collected.signal()
        }
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            collected.wait()
            throw Failure(
                description: "\(executable) timed out after \(timeoutSeconds) s:\n"
                    + String(decoding: box.data, as: UTF8.self))
        }
        process.waitUntilExit()
        collected.wait()
        output = box.data
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    final class OutputBox: @unchecked Sendable {
        var data = Data()
    }
}
