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
