import ArgumentParser
import Foundation

/// This build of Sinew.
enum SinewVersion {
    static let number = "0.5.0"
}

/// Finds Sinew's data folder, `Hardware/` (servo tables, shipped robots, udev rules), from the executable's real
/// path (`/proc/self/exe`, so neither `argv[0]`, a symlink nor the current directory changes the answer):
/// 1. `$SINEW_HARDWARE_DIR`, when set;
/// 2. an installation: `<prefix>/bin/sinew` → `<prefix>/share/sinew/Hardware` (`make install PREFIX=…`);
/// 3. a checkout: the first `Hardware/` in the executable's folder or above it (`.build/release/sinew`).
enum HardwareDirectory {
    /// Where the data folder was found and how.
    struct Location {
        var path: String
        /// `SINEW_HARDWARE_DIR`, `installation` or `checkout`.
        var source: String
    }

    static func locate() throws -> String { try find().path }

    static func find() throws -> Location {
        let fm = FileManager.default
        if let dir = ProcessInfo.processInfo.environment["SINEW_HARDWARE_DIR"], !dir.isEmpty {
            guard fm.fileExists(atPath: dir + "/servos") else {
                throw ValidationError(
                    "SINEW_HARDWARE_DIR=\(dir) has no servos/ folder: point it at Sinew's Hardware folder "
                        + "(a checkout's Hardware/, or <prefix>/share/sinew/Hardware of an installation)")
            }
            return Location(path: dir, source: "SINEW_HARDWARE_DIR")
        }
        let executable = executablePath()
        let binDirectory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        let installed = binDirectory.deletingLastPathComponent().appendingPathComponent("share/sinew/Hardware").path
        if fm.fileExists(atPath: installed + "/servos") { return Location(path: installed, source: "installation") }
        var dir = binDirectory
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("Hardware").path
            if fm.fileExists(atPath: candidate + "/servos") && fm.fileExists(atPath: candidate + "/robots") {
                return Location(path: candidate, source: "checkout")
            }
            dir = dir.deletingLastPathComponent()
        }
        throw ValidationError(
            "cannot find Sinew's data (servo tables, robots): looked in \(installed) and for a Hardware/ folder "
                + "above \(executable). Install with `make install PREFIX=…`, or set SINEW_HARDWARE_DIR to the "
                + "Hardware folder of a Sinew checkout")
    }

    /// The running executable's real path (symlinks resolved by the kernel).
    static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if count > 0 {
            return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        // No /proc (a chroot without it): the path the process was started by, made absolute.
        return URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    }

    /// `sinew --version`: the version, the executable, and where the data comes from.
    static var versionText: String {
        var text = "sinew \(SinewVersion.number)\nexecutable: \(executablePath())\n"
        do {
            let location = try find()
            text += "data: \(location.path) (\(location.source))"
        } catch {
            text += "data: not found: \(error)"
        }
        return text
    }
}
