import ArgumentParser
import Foundation

/// Finds the repository's `Hardware/` folder (servo tables, shipped robots): $SINEW_HARDWARE_DIR, then
/// beside the executable's build folder (.build/<config>/sinew → Hardware), then the current directory.
enum HardwareDirectory {
    static func locate() throws -> String {
        let fm = FileManager.default
        if let dir = ProcessInfo.processInfo.environment["SINEW_HARDWARE_DIR"] { return dir }
        var candidates: [String] = []
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = executable.deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("Hardware").path)
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(fm.currentDirectoryPath + "/Hardware")
        for candidate in candidates where fm.fileExists(atPath: candidate + "/robots") { return candidate }
        throw ValidationError(
            "cannot find Sinew's Hardware/ folder (looked beside the executable and in the current directory); "
                + "set SINEW_HARDWARE_DIR to the Hardware folder of your Sinew checkout")
    }
}
