import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The run's terminal as an e-stop: while a run is active, a key pressed in the terminal it was started from
/// is read at once (no Enter needed) on a thread of its own, and the e-stop keys (`e`, `E` or the space bar)
/// trigger the keyboard e-stop source; `r` asks for recovery from the safe state. Ctrl-C keeps its meaning (SIGINT: the run ends in the safe state).
/// Nothing happens when standard input is not a terminal, or the run is in the background of its shell.
final class TerminalKeys: @unchecked Sendable {
    /// The keys that trigger the e-stop, shown in the status line.
    static let emergencyStopKeys: Set<UInt8> = [UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: " ")]
    /// The key that asks for recovery from the safe state.
    static let recoverKeys: Set<UInt8> = [UInt8(ascii: "r"), UInt8(ascii: "R")]
    static let hint = "e or space: e-stop, r: recover"

    private var savedMode = termios()
    private let stopRequested = Atomic<Bool>(false)
    private let readerRunning = Atomic<Bool>(false)
    /// Whether keys are read (standard input is this process's controlling terminal, in the foreground).
    let isActive: Bool

    /// How long the reader waits after an ESC byte for the rest of a key's sequence (an arrow sends ESC [ C at
    /// once) before it takes the ESC for the Esc key alone, ms.
    static let escapeWaitMs: Int32 = 60

    /// Starts reading keys; `onEmergencyStop` and `onRecover` run on the reader thread for each of their keys,
    /// `onOtherByte` for every other byte (a jog policy's keys) — for every byte with `allBytes` (a terminal
    /// that is no run's e-stop, such as `sinew virtual-bus --hand keys`). With `onEscape`, an ESC byte that no
    /// other byte follows within `escapeWaitMs` is the Esc key: `onEscape` runs instead of `onOtherByte`.
    init(
        onEmergencyStop: @escaping @Sendable () -> Void, onRecover: @escaping @Sendable () -> Void = {},
        onOtherByte: (@Sendable (UInt8) -> Void)? = nil, onEscape: (@Sendable () -> Void)? = nil,
        allBytes: Bool = false
    ) {
        guard Self.standardInputIsAForegroundTerminal,
            tcgetattr(STDIN_FILENO, &savedMode) == 0
        else {
            isActive = false
            return
        }
        var raw = savedMode
        // Byte by byte, without echo; ISIG stays, so Ctrl-C and Ctrl-\ still reach the process as signals.
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 else {
            isActive = false
            return
        }
        isActive = true
        readerRunning.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            var byte: UInt8 = 0
            while !stopRequested.load(ordering: .acquiring) {
                guard poll(&descriptor, 1, 100) == 1 else { continue }
                // End of input or an error (the terminal went away): stop reading, the run goes on.
                guard read(STDIN_FILENO, &byte, 1) == 1 else { break }
                if byte == 0x1B, let onEscape, poll(&descriptor, 1, Self.escapeWaitMs) != 1 {
                    onEscape()
                } else if allBytes {
                    onOtherByte?(byte)
                } else if Self.emergencyStopKeys.contains(byte) {
                    onEmergencyStop()
                } else if Self.recoverKeys.contains(byte) {
                    onRecover()
                } else {
                    onOtherByte?(byte)
                }
            }
            readerRunning.store(false, ordering: .releasing)
        }
        thread.name = "sinew-terminal-keys"
        thread.start()
    }

    /// Whether standard input is a terminal this process may read keys from: its controlling terminal with this
    /// process's group in the foreground (a run in the background of its shell must not take the shell's keys), or
    /// a terminal that is no one's controlling terminal here (a pseudo-terminal a program hands it as its input).
    static var standardInputIsAForegroundTerminal: Bool {
        guard isatty(STDIN_FILENO) != 0 else { return false }
        let group = tcgetpgrp(STDIN_FILENO)
        return group == getpgrp() || (group < 0 && errno == ENOTTY)
    }

    /// Stops reading and gives the terminal back its mode (echo, line editing); calling it again is harmless.
    func finish() {
        guard isActive else { return }
        stopRequested.store(true, ordering: .releasing)
        while readerRunning.load(ordering: .acquiring) { usleep(5_000) }
        tcsetattr(STDIN_FILENO, TCSANOW, &savedMode)
    }

    deinit { finish() }
}
