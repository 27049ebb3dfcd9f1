import Foundation
import SinewTestSupport
import Testing

/// An installed `sinew` finds its data from its own real path, whatever the current directory or a symlink
/// in between, and says where it came from (`sinew --version`).
@Suite(.serialized) struct InstallationTests {
    @Test func anInstalledExecutableFindsItsDataBesideItsPrefix() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("sinew-install-\(getpid())").path
        defer { try? fm.removeItem(atPath: root) }
        // The layout `make install PREFIX=root/prefix` makes: bin/sinew and share/sinew/Hardware.
        let prefix = root + "/prefix"
        try fm.createDirectory(atPath: prefix + "/bin", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: prefix + "/share/sinew", withIntermediateDirectories: true)
        try fm.copyItem(atPath: sinewExecutable, toPath: prefix + "/bin/sinew")
        try fm.copyItem(atPath: repositoryRoot + "/Hardware", toPath: prefix + "/share/sinew/Hardware")
        try fm.createDirectory(atPath: root + "/elsewhere", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: root + "/elsewhere/sinew", withDestinationPath: prefix + "/bin/sinew")

        for executable in [prefix + "/bin/sinew", root + "/elsewhere/sinew"] {
            let version = runProcess(executable, ["--version"])
            #expect(version.status == 0, "\(version.output)")
            #expect(version.output.hasPrefix("sinew "), "\(version.output)")
            #expect(
                version.output.contains("data: \(prefix)/share/sinew/Hardware (installation)"), "\(version.output)")
        }
        // The installed data serves a run from anywhere.
        let run = runProcess(prefix + "/bin/sinew", ["demo", "--kinematics"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains(prefix + "/share/sinew/Hardware/robots/so101/so101.urdf"), "\(run.output)")

        // Alone, without its data: a clear error that says how to give it some.
        try fm.createDirectory(atPath: root + "/alone", withIntermediateDirectories: true)
        try fm.copyItem(atPath: sinewExecutable, toPath: root + "/alone/sinew")
        let alone = runProcess(root + "/alone/sinew", ["demo", "--kinematics"])
        #expect(alone.status != 0)
        #expect(alone.output.contains("SINEW_HARDWARE_DIR") && alone.output.contains("make install"), "\(alone.output)")
    }

    @Test func theDataFolderCanBeNamedInTheEnvironment() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: sinewExecutable)
        process.arguments = ["--version"]
        process.environment = sinewChildEnvironment.merging([
            "SINEW_HARDWARE_DIR": repositoryRoot + "/Hardware"
        ]) { $1 }
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(text.contains("data: \(repositoryRoot)/Hardware (SINEW_HARDWARE_DIR)"), "\(text)")
        let version = try runSinew(["--version"])
        #expect(version.stdout.contains("(checkout)") && version.stdout.contains("executable: "), "\(version.stdout)")
    }
}
