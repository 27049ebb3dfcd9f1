import Foundation

/// Runs the `sinew` executable built beside the test bundle and captures what it prints.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

let sharedDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["SINEW_SHARED_DIR"] { return dir }
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    return repo.deletingLastPathComponent().appendingPathComponent("shared").path
}()

let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

let kinematicsReferenceDirectory = sharedDirectory + "/reference/kinematics"

/// The `sinew` binary of the same build as this test bundle.
let sinewExecutable: String = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("sinew").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return repositoryRoot + "/.build/release/sinew"
}()

func runSinew(_ arguments: [String], input: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: sinewExecutable)
    process.arguments = arguments
    let out = Pipe()
    let inPipe = Pipe()
    // Standard error goes to a file, so a chatty child can never block on a full pipe while we read stdout.
    let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-test-\(UUID().uuidString).err")
        .path
    FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errPath) }
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try inPipe.fileHandleForWriting.close()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try err.close()
    let errData = FileManager.default.contents(atPath: errPath) ?? Data()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

func jsonObject(_ text: String) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
}
