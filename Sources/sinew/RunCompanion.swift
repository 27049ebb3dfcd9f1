import Foundation
import SinewRuntime
import SinewTwin

/// Something that rides along a `sinew run`-style run without touching the tick: sinks on the recorder's thread
/// (fed every tick), the terminal's keys that are not the e-stop's, and a say in the status line and in when the
/// run ends. `sinew record` on a real arm is one (``ArmEpisodeRecorder``).
protocol RunCompanion: AnyObject, Sendable {
    /// Sinks for the recorder's thread; each gets every tick.
    var sinks: [any RecordingSink] { get }
    /// What the companion's keys do, for the status line.
    var keysHint: String { get }
    /// A byte from the terminal that is neither an e-stop key nor the recover key (on the key-reading thread).
    func keyByte(_ byte: UInt8)
    /// The Esc key alone, told apart from the start of an arrow's sequence (on the key-reading thread).
    func escapeKey()
    /// On the monitor's thread, a few times a second: lines to print, the head of the status line, and whether the
    /// run should end now.
    func monitor() -> RunCompanionView
}

/// What a ``RunCompanion`` shows and asks for at one look of the monitor.
struct RunCompanionView {
    var lines: [String]
    var status: String
    var endRun: Bool
}

extension ArmEpisodeRecorder: RunCompanion {
    var sinks: [any RecordingSink] { [self] }

    var keysHint: String { "→ end/skip, ← redo, Esc stop" }

    func monitor() -> RunCompanionView {
        RunCompanionView(lines: newLines(), status: statusText, endRun: isDone)
    }
}
