import ArgumentParser
import Foundation
import SinewBus
import SinewDrivers
import SinewSim

/// A failure that is not the user's argument mistake (a pty that cannot be opened, a port that vanished):
/// printed as "Error: …" without the usage text, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The servo tables of `Hardware/servos` (model names, model numbers, control tables).
enum ServoTables {
    static func load() throws -> ServoCatalog {
        let directory = try HardwareDirectory.locate() + "/servos"
        do {
            return try ServoCatalog.load(directory: directory)
        } catch {
            throw CommandFailure("cannot load the servo tables: \(error)")
        }
    }

    /// The catalog when it can be found, nil otherwise (a scan still works without model names).
    static func loadIfPresent() -> ServoCatalog? { try? load() }
}

extension ServoCatalog {
    /// The model a scan found, from the number it reported and the protocol it answered on.
    func model(number: UInt16, protocol busProtocol: BusProtocol) -> ServoModel? {
        models.values.first { model in
            guard model.modelNumber == number else { return false }
            switch busProtocol {
            case .dynamixel: return model.wireProtocol == .dynamixel2
            case .feetechSTS, .feetechSCS: return model.wireProtocol != .dynamixel2
            }
        }
    }
}

/// `--wire-timing on|off`.
enum OnOff: String, ExpressibleByArgument, CaseIterable {
    case on, off
}

/// Files of the checkout beside the executable (benchmark scripts, the Python venv made by `make pyenv`):
/// found from `Hardware/`'s parent, or by walking up from the executable.
enum Checkout {
    static var root: String? {
        if let hardware = try? HardwareDirectory.locate() {
            return URL(fileURLWithPath: hardware).deletingLastPathComponent().path
        }
        return nil
    }

    /// The Python with the vendors' SDKs: $SINEW_PYTHON, else `.build/pyenv/bin/python` of the checkout.
    static var python: String? {
        if let python = ProcessInfo.processInfo.environment["SINEW_PYTHON"], !python.isEmpty { return python }
        guard let root else { return nil }
        let candidate = root + "/.build/pyenv/bin/python"
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every thread it creates afterwards),
/// so that ``waitForTerminationSignal()`` receives them instead of their default action.
func blockTerminationSignals() {
    var set = terminationSignals()
    pthread_sigmask(SIG_BLOCK, &set, nil)
}

/// Waits until SIGINT, SIGTERM or SIGHUP arrives (blocked beforehand); returns its number.
func waitForTerminationSignal() -> Int32 {
    var set = terminationSignals()
    var signal: Int32 = 0
    while sigwait(&set, &signal) != 0 {}
    return signal
}

private func terminationSignals() -> sigset_t {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    sigaddset(&set, SIGHUP)
    return set
}

/// Standard output written and flushed now, so a script reading a pipe sees it while the command runs.
func printFlushed(_ line: String) {
    print(line)
    fflush(nil)
}
