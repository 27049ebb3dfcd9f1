import Foundation
import SinewPolicy
import Testing

struct MessagePackTests {
    /// The specification's encodings for the edges of each family.
    @Test func knownEncodings() throws {
        let cases: [(MessagePackValue, [UInt8])] = [
            (.null, [0xC0]), (.bool(true), [0xC3]), (.uint(127), [0x7F]), (.uint(128), [0xCC, 0x80]),
            (.int(-32), [0xE0]), (.int(-33), [0xD0, 0xDF]), (.uint(65_536), [0xCE, 0, 1, 0, 0]),
            (.string("a"), [0xA1, 0x61]), (.binary([1, 2]), [0xC4, 2, 1, 2]),
            (.array([.uint(1)]), [0x91, 1]), (.float(1.5, isFloat32: false), [0xCB, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0]),
            (.float(1.5, isFloat32: true), [0xCA, 0x3F, 0xC0, 0, 0]),
        ]
        for (value, bytes) in cases {
            #expect(MessagePack.encode(value) == bytes, "\(value)")
            #expect(try MessagePack.decode(bytes) == value, "\(bytes)")
        }
    }

    /// Values of every kind survive a round trip, long strings and containers included.
    @Test func roundTrips() throws {
        let long = String(repeating: "x", count: 70_000)
        let value = MessagePackValue.map([
            MessagePackPair(.string("state"), NumpyArray(float32: [0.1, -0.2, 0.3], shape: [3]).messagePack),
            MessagePackPair(.string("prompt"), .string(long)),
            // Non-negative integers come back as uint, as the wire does not tell them apart.
            MessagePackPair(
                .string("n"), .array((0..<300).map { $0 < 150 ? .int(Int64($0) - 150) : .uint(UInt64($0)) })),
            MessagePackPair(.string("big"), .uint(UInt64.max)), MessagePackPair(.string("min"), .int(Int64.min)),
            MessagePackPair(.string("ext"), .ext(type: 5, data: [1, 2, 3])),
        ])
        #expect(try MessagePack.decode(MessagePack.encode(value)) == value)
    }

    /// Truncated, oversized, too deep and malformed messages are errors with an offset, never a crash: 10^5
    /// seeded mutations of a typical observation frame.
    @Test func mutatedFramesAreRefusedWithoutACrash() throws {
        var writer = MessagePackWriter()
        writer.writeMapHeader(3)
        writer.write("observation.state")
        writer.write(NumpyArray(float32: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], shape: [6]).messagePack)
        writer.write("prompt")
        writer.write("pick up the cube")
        writer.write("actions")
        writer.write(NumpyArray(float64: (0..<12).map(Double.init), shape: [2, 6]).messagePack)
        let frame = writer.bytes
        var generator = SplitMix64(seed: 11)
        var refused = 0
        for _ in 0..<100_000 {
            var bytes = frame
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                let r = generator.next()
                let at = Int(r % UInt64(max(bytes.count, 1)))
                switch (r >> 32) % 4 {
                case 0: if !bytes.isEmpty { bytes[at] = UInt8(truncatingIfNeeded: r >> 40) }
                case 1: bytes = Array(bytes.prefix(at))
                case 2: bytes.insert(UInt8(truncatingIfNeeded: r >> 48), at: min(at, bytes.count))
                default: if !bytes.isEmpty { bytes[at] ^= 0xFF }
                }
            }
            do {
                let value = try MessagePack.decode(bytes, limits: MessagePackLimits(maximumBytes: 1 << 20))
                if let actions = value["actions"] { _ = try? NumpyArray(actions).doubles() }
            } catch {
                refused += 1
                #expect(error.offset >= 0 && error.offset <= bytes.count)
            }
        }
        print("msgpack: \(refused) of 100000 mutated frames refused")
        #expect(refused > 10_000)
        // Nesting beyond the limit and a count beyond the bytes left.
        #expect(throws: MessagePackError.self) { try MessagePack.decode([UInt8](repeating: 0x91, count: 100) + [0xC0]) }
        #expect(throws: MessagePackError.self) { try MessagePack.decode([0xDD, 0xFF, 0xFF, 0xFF, 0xFF]) }
        #expect(throws: MessagePackError.self) { try MessagePack.decode([0xC6, 0x7F, 0xFF, 0xFF, 0xFF, 1]) }
    }

    /// numpy arrays as msgpack-numpy lays them out: dtypes, byte orders, and a shape that does not match its data.
    @Test func numpyArrays() throws {
        let a = NumpyArray(float64: [1, -2.5, 3e10], shape: [3])
        #expect(try NumpyArray(a.messagePack).doubles() == [1, -2.5, 3e10])
        let big = NumpyArray(dtype: ">i2", shape: [2], data: [0xFF, 0xFE, 0x00, 0x07])
        #expect(try NumpyArray(big.messagePack).doubles() == [-2, 7])
        let bad = NumpyArray(dtype: "<f4", shape: [3], data: [0, 0, 0, 0])
        #expect(throws: MessagePackError.self) { try NumpyArray(bad.messagePack) }
        let object = NumpyArray(dtype: "|O", shape: [1], data: [0])
        #expect(throws: MessagePackError.self) { try NumpyArray(object.messagePack) }
    }
}

struct WebSocketHandshakeTests {
    /// RFC 6455 §1.3's example: the key "dGhlIHNhbXBsZSBub25jZQ==" is accepted as "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    @Test func acceptKeyOfTheRFC() {
        #expect(WebSocketClient.acceptKey(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(WebSocketClient.acceptKey(forKey: "x") != WebSocketClient.acceptKey(forKey: "y"))
    }

    /// Addresses: ws:// and wss:// (443 by default), the port checked, loopback told apart.
    @Test func endpoints() throws {
        let e = try WebSocketClient.Endpoint(url: "ws://127.0.0.1:8000/policy")
        #expect(e.host == "127.0.0.1" && e.port == 8000 && e.path == "/policy" && e.isLoopback)
        let v6 = try WebSocketClient.Endpoint(url: "ws://[::1]:9")
        #expect(v6.host == "::1" && v6.port == 9 && v6.isLoopback)
        #expect(try !WebSocketClient.Endpoint(url: "ws://gpu-box:8000").isLoopback)
        let tls = try WebSocketClient.Endpoint(url: "wss://gpu-box")
        #expect(tls.secure && tls.port == 443 && !tls.isLoopback)
        #expect(throws: RemotePolicyError.self) { try WebSocketClient.Endpoint(url: "ws://host:0") }
        #expect(throws: RemotePolicyError.self) { try WebSocketClient.Endpoint(url: "http://host:80") }
        // A plain connection to another machine needs `insecure`; TLS does not.
        let settings = RemotePolicy.Settings(url: "ws://10.0.0.2:8000", actionJoints: ["a"], stateJoints: ["a"])
        #expect(throws: RemotePolicyError.self) {
            try RemotePolicy(settings: settings, jointNames: ["a"], lowerRad: [-1], upperRad: [1])
        }
        var secure = settings
        secure.url = "wss://10.0.0.2:8000"
        _ = try RemotePolicy(settings: secure, jointNames: ["a"], lowerRad: [-1], upperRad: [1])
    }

    /// LeRobot's normalised units map onto the joint's range both ways; a gripper uses 0…100.
    @Test func lerobotUnits() throws {
        var settings = RemotePolicy.Settings(
            url: "ws://127.0.0.1:1", actionJoints: ["a", "g"], stateJoints: ["a", "g"])
        settings.gripperJoints = ["g"]
        settings.actionUnits = .lerobot
        let policy = try RemotePolicy(
            settings: settings, jointNames: ["a", "g"], lowerRad: [-2, 0], upperRad: [2, 1])
        #expect(policy.toServer(0, joint: 0, units: .lerobot) == 0)
        #expect(policy.toServer(2, joint: 0, units: .lerobot) == 100)
        #expect(policy.toServer(0.5, joint: 1, units: .lerobot) == 50)
        #expect(policy.fromServer(-100, joint: 0, units: .lerobot) == -2)
        #expect(policy.fromServer(100, joint: 1, units: .lerobot) == 1)
        #expect(abs(policy.fromServer(90, joint: 0, units: .deg) - .pi / 2) < 1e-15)
    }
}
