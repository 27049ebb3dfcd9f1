import Foundation
import SinewBus

#if canImport(Glibc)
    import Glibc
#endif

/// A live status line on standard error. On a terminal it is redrawn in place and cut to the terminal's
/// width (a line that wraps cannot be redrawn with a carriage return); anywhere else (a pipe, a log, CI) it
/// is printed as a plain line at most once per `logInterval`, so logs stay readable.
final class StatusLine {
    let interactive = isatty(STDERR_FILENO) != 0
    let logIntervalNs: UInt64
    private var lastLogNs: UInt64?
    private var drawn = false

    /// - Parameter logIntervalS: seconds between lines when standard error is not a terminal.
    init(logIntervalS: Double = 1) { logIntervalNs = UInt64(logIntervalS * 1e9) }

    func show(_ text: String) {
        if interactive {
            let columns = Self.terminalColumns()
            let fitted = columns > 1 && text.count >= columns ? String(text.prefix(columns - 1)) : text
            writeStandardError("\r\u{1B}[K" + fitted)
            drawn = true
            return
        }
        let now = MonotonicInstant.now().nanoseconds
        if let last = lastLogNs, now &- last < logIntervalNs { return }
        lastLogNs = now
        printError(text)
    }

    /// Ends the line on a terminal (what follows starts on a fresh line).
    func finish() {
        if drawn { writeStandardError("\n") }
        drawn = false
    }

    /// The width of the terminal on standard error, in columns (0 when unknown).
    static func terminalColumns() -> Int {
        var size = winsize()
        return ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 ? Int(size.ws_col) : 0
    }
}
