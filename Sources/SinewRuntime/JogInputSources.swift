import Foundation
import SinewCore
import SinewPolicy
import Synchronization

/// The jog keys of a run's terminal, decoded from the bytes the terminal sends: arrows move along x (up/down)
/// and y (left/right), Page Up/Page Down along z, `u`/`o` roll, `i`/`k` pitch, `j`/`l` yaw. A key held down
/// repeats (the terminal's auto-repeat); its command lapses shortly after the last repeat, so a key let go
/// stops the arm. A parser of outside input: any byte sequence is taken, unknown ones ignored.
public struct JogKeyDecoder: Sendable {
    /// What a decoded key asks: an axis (0–5: x, y, z, roll, pitch, yaw) and a direction.
    public struct Key: Sendable, Equatable {
        public var axis: Int
        public var sign: Double
        public init(axis: Int, sign: Double) {
            self.axis = axis
            self.sign = sign
        }
    }

    public static let hint = "jog: arrows x/y, PgUp/PgDn z, u/o roll, i/k pitch, j/l yaw"

    private var escape: [UInt8] = []

    public init() {}

    /// Feeds one byte; returns the key it completes, if any.
    public mutating func feed(_ byte: UInt8) -> Key? {
        if !escape.isEmpty || byte == 0x1B {
            escape.append(byte)
            // ESC [ A…D (arrows), ESC [ 5 ~ / ESC [ 6 ~ (pages); ESC O A…D in application mode.
            if escape.count == 1 { return nil }
            if escape.count == 2 {
                if byte != UInt8(ascii: "[") && byte != UInt8(ascii: "O") { escape = [] }
                return nil
            }
            if escape.count == 3 {
                defer { if byte != UInt8(ascii: "5") && byte != UInt8(ascii: "6") { escape = [] } }
                switch byte {
                case UInt8(ascii: "A"): return Key(axis: 0, sign: 1)
                case UInt8(ascii: "B"): return Key(axis: 0, sign: -1)
                case UInt8(ascii: "C"): return Key(axis: 1, sign: -1)
                case UInt8(ascii: "D"): return Key(axis: 1, sign: 1)
                default: return nil
                }
            }
            let page = escape[2]
            escape = []
            guard byte == UInt8(ascii: "~") else { return nil }
            return Key(axis: 2, sign: page == UInt8(ascii: "5") ? 1 : -1)
        }
        switch byte {
        case UInt8(ascii: "u"): return Key(axis: 3, sign: 1)
        case UInt8(ascii: "o"): return Key(axis: 3, sign: -1)
        case UInt8(ascii: "i"): return Key(axis: 4, sign: 1)
        case UInt8(ascii: "k"): return Key(axis: 4, sign: -1)
        case UInt8(ascii: "j"): return Key(axis: 5, sign: 1)
        case UInt8(ascii: "l"): return Key(axis: 5, sign: -1)
        default: return nil
        }
    }

    /// Sends a decoded key to `input` as the keyboard's command: that axis alone, lapsing after `holdNs`
    /// (longer than the gap between a terminal's auto-repeats, ~30–50 ms, and its first delay, ~250–600 ms).
    public static func send(_ key: Key, to input: JogInput, holdNs: Int64 = 650_000_000) {
        var axes = [Double](repeating: 0, count: 6)
        axes[key.axis] = key.sign
        input.set(
            .keyboard, axes: (axes[0], axes[1], axes[2], axes[3], axes[4], axes[5]),
            expiresAtNs: JogPolicy.monotonicNowNs() + holdNs)
    }
}

/// A Linux joystick or gamepad (`/dev/input/js*`, the kernel's joystick API: 8-byte events of time (ms),
/// value (−32767…32767), type (1 button, 2 axis, 0x80 the initial state) and number) read on a thread of its
/// own, its sticks mapped onto the jog axes with a dead zone. A device that goes away stops the command.
public final class JoystickJogSource: @unchecked Sendable {
    // @unchecked: the reader thread owns the descriptor and the state; the stop flag is atomic.
    /// Which stick axis drives each jog axis (x, y, z, roll, pitch, yaw; -1: none) and its sign. The default
    /// suits an Xbox-style pad: left stick x/y, right stick z and yaw.
    public struct Mapping: Sendable, Equatable {
        public var axis: [Int]
        public var sign: [Double]
        public var deadZone: Double
        public init(
            axis: [Int] = [1, 0, 4, -1, -1, 3], sign: [Double] = [-1, -1, -1, 1, 1, -1], deadZone: Double = 0.12
        ) {
            self.axis = axis
            self.sign = sign
            self.deadZone = deadZone
        }
    }

    public let path: String
    let mapping: Mapping
    let input: JogInput
    private let descriptor: Int32
    private let stopRequested = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)
    /// The stick axes' last values, −1…1, by axis number (kernel joysticks have at most ABS_CNT axes).
    private var axisValues = [Double](repeating: 0, count: 64)

    /// Opens the device; throws with the reason when it cannot.
    public init(path: String, mapping: Mapping = Mapping(), input: JogInput) throws(RobotLoopError) {
        self.path = path
        self.mapping = mapping
        self.input = input
        descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw RobotLoopError("joystick \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        stop()
        close(descriptor)
    }

    /// The first joystick device present (`/dev/input/js0` …), or nil.
    public static func firstDevice() -> String? {
        (0..<16).map { "/dev/input/js\($0)" }.first { FileManager.default.fileExists(atPath: $0) }
    }

    public func start() {
        running.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            run()
            running.store(false, ordering: .releasing)
        }
        thread.name = "sinew-joystick"
        thread.start()
    }

    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        while running.load(ordering: .acquiring) { usleep(2_000) }
    }

    private func run() {
        var buffer = [UInt8](repeating: 0, count: 64 * 8)
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while !stopRequested.load(ordering: .acquiring) {
            guard poll(&poller, 1, 100) >= 0 else { break }
            if poller.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { break }
            guard poller.revents & Int16(POLLIN) != 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EAGAIN { continue }
            guard count > 0 else { break }
            for event in Self.decode(buffer[0..<count]) where event.isAxis && event.number < axisValues.count {
                axisValues[event.number] = Double(event.value) / 32767
            }
            publish()
        }
        // Gone (unplugged) or stopped: nothing more is asked.
        input.set(.joystick, axes: (0, 0, 0, 0, 0, 0), expiresAtNs: 0)
    }

    private func publish() {
        var axes = [Double](repeating: 0, count: 6)
        for k in 0..<6 where k < mapping.axis.count && mapping.axis[k] >= 0 && mapping.axis[k] < axisValues.count {
            let raw = axisValues[mapping.axis[k]]
            let magnitude = max(0, (abs(raw) - mapping.deadZone) / (1 - mapping.deadZone))
            axes[k] = (raw < 0 ? -magnitude : magnitude) * (k < mapping.sign.count ? mapping.sign[k] : 1)
        }
        input.set(.joystick, axes: (axes[0], axes[1], axes[2], axes[3], axes[4], axes[5]))
    }

    /// One event of the kernel's joystick API.
    public struct Event: Sendable, Equatable {
        public var timeMs: UInt32
        public var value: Int16
        public var type: UInt8
        public var number: Int
        /// An axis event (the initial-state flag 0x80 ignored).
        public var isAxis: Bool { type & 0x7F == 0x02 }
        public var isButton: Bool { type & 0x7F == 0x01 }
    }

    /// The whole events in `bytes` (8 bytes each, little-endian; a trailing partial event is ignored).
    public static func decode(_ bytes: ArraySlice<UInt8>) -> [Event] {
        var events: [Event] = []
        var i = bytes.startIndex
        while i + 8 <= bytes.endIndex {
            let time =
                UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            let value = Int16(bitPattern: UInt16(bytes[i + 4]) | UInt16(bytes[i + 5]) << 8)
            events.append(Event(timeMs: time, value: value, type: bytes[i + 6], number: Int(bytes[i + 7])))
            i += 8
        }
        return events
    }
}
