import Foundation
import SinewPolicy
import SinewRuntime
import Testing

struct JogInputSourceTests {
    /// Arrows, Page Up/Down (as terminals send them, in both cursor modes) and the rotation letters.
    @Test func terminalKeysDecodeToAxes() {
        var decoder = JogKeyDecoder()
        func keys(_ text: [UInt8]) -> [JogKeyDecoder.Key] { text.compactMap { decoder.feed($0) } }
        #expect(keys([0x1B, 0x5B, 0x41]) == [.init(axis: 0, sign: 1)])  // up
        #expect(keys([0x1B, 0x5B, 0x42]) == [.init(axis: 0, sign: -1)])  // down
        #expect(keys([0x1B, 0x4F, 0x44]) == [.init(axis: 1, sign: 1)])  // left, application mode
        #expect(keys([0x1B, 0x5B, 0x43]) == [.init(axis: 1, sign: -1)])  // right
        #expect(keys(Array("\u{1B}[5~".utf8)) == [.init(axis: 2, sign: 1)])
        #expect(keys(Array("\u{1B}[6~".utf8)) == [.init(axis: 2, sign: -1)])
        #expect(keys(Array("uoikjl".utf8)).map(\.axis) == [3, 3, 4, 4, 5, 5])
        #expect(keys(Array("x\u{1B}[Zq\u{1B}[7~".utf8)).isEmpty)
        #expect(keys([0x1B, 0x5B, 0x41]) == [.init(axis: 0, sign: 1)], "decoding resumes after unknown sequences")
    }

    /// Any byte sequence is taken without a crash (a seeded stream of random bytes and escape fragments).
    @Test func arbitraryBytesAreHarmless() {
        var decoder = JogKeyDecoder()
        var generator = SplitMix64(seed: 7)
        var decoded = 0
        for _ in 0..<200_000 {
            let r = generator.next()
            let byte: UInt8 =
                r % 4 == 0 ? [0x1B, 0x5B, 0x4F, 0x35, 0x36, 0x7E][Int(r >> 8) % 6] : UInt8(truncatingIfNeeded: r >> 16)
            if decoder.feed(byte) != nil { decoded += 1 }
        }
        #expect(decoded > 0)
        for bytes in [[UInt8](), [1, 2, 3], [UInt8](repeating: 0xFF, count: 17)] {
            _ = JoystickJogSource.decode(bytes[...])
        }
        for _ in 0..<10_000 {
            let count = Int(generator.next() % 40)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            #expect(JoystickJogSource.decode(bytes[...]).count == count / 8)
        }
    }

    /// A joystick device (here a FIFO standing in for /dev/input/js0, fed the kernel's 8-byte events): pushing
    /// the left stick forward asks +x, the dead zone keeps a resting stick still, and a device that goes away
    /// stops the command.
    @Test func aJoystickDrivesTheJogInput() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-js-\(UUID().uuidString)").path
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        let input = JogInput()
        let source = try JoystickJogSource(path: path, input: input)
        source.start()
        let writer = open(path, O_WRONLY)
        #expect(writer >= 0)
        func event(_ type: UInt8, _ number: UInt8, _ value: Int16) -> [UInt8] {
            let v = UInt16(bitPattern: value)
            return [0, 0, 0, 0, UInt8(v & 0xFF), UInt8(v >> 8), type, number]
        }
        func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) } }
        func settle(until condition: () -> Bool) -> Bool {
            for _ in 0..<200 {
                if condition() { return true }
                usleep(5_000)
            }
            return false
        }
        // Initial state (0x80 flag) with the stick resting slightly off centre, then pushed fully forward.
        send(event(0x82, 1, -2000) + event(0x82, 0, 1500))
        #expect(settle { input.read(nowNs: 0) == (0, 0, 0, 0, 0, 0) })
        send(event(0x02, 1, -32767))
        #expect(settle { input.read(nowNs: 0).0 == 1 })
        close(writer)
        #expect(settle { input.read(nowNs: 0).0 == 0 }, "a vanished device stops the command")
        source.stop()
    }
}
