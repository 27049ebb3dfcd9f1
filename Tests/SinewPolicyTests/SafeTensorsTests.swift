import Foundation
import SinewPolicy
import Testing

/// A seeded generator for the mutation test (SplitMix64): the same mutants on every run.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * Double(next() >> 11) * 0x1p-53
    }
}

/// A file's bytes from its header text and data, the header length written in front.
func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    let text = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(text.count).littleEndian) { out.append(contentsOf: $0) }
    return out + text + data
}

func parse(_ bytes: [UInt8], limits: SafeTensorsFile.Limits = .init()) -> Result<SafeTensorsFile, SafeTensorsError> {
    Result { () throws(SafeTensorsError) in try SafeTensorsFile(bytes: bytes, file: "test.safetensors", limits: limits)
    }
}

/// The error a file gets, or a failure naming what was accepted.
func refusal(_ bytes: [UInt8], limits: SafeTensorsFile.Limits = .init()) -> String {
    switch parse(bytes, limits: limits) {
    case .success(let file): return "accepted (\(file.tensors.map(\.name)))"
    case .failure(let error): return error.description
    }
}

struct SafeTensorsTests {
    /// What the encoder writes reads back: names, dtypes, shapes, metadata and values (F32 rounded, F64 exact),
    /// a scalar and an empty tensor included.
    @Test func filesReadBackAsWritten() throws {
        let bytes = SafeTensorsFile.encode(
            [
                .init(name: "layers.0.weight", dtype: .f32, shape: [2, 3], values: [1, -2, 0.1, 4, 5, 6]),
                .init(name: "layers.0.bias", dtype: .f64, shape: [2], values: [0.1, -1e-300]),
                .init(name: "scalar \"quoted\"\n", dtype: .f64, shape: [], values: [3]),
                .init(name: "empty", dtype: .f32, shape: [0, 4], values: []),
            ],
            metadata: ["activation": "relu", "note": "ünïcode ✓"])
        let file = try SafeTensorsFile(bytes: bytes, file: "roundtrip.safetensors")
        #expect(file.metadata == ["activation": "relu", "note": "ünïcode ✓"])
        #expect(file.tensors.map(\.name) == ["layers.0.weight", "layers.0.bias", "scalar \"quoted\"\n", "empty"])
        #expect(file.tensor("layers.0.weight")?.shape == [2, 3])
        #expect(try file.values("layers.0.weight") == [1, -2, Double(Float(0.1)), 4, 5, 6])
        #expect(try file.values("layers.0.bias") == [0.1, -1e-300])
        #expect(try file.values("scalar \"quoted\"\n") == [3])
        #expect(try file.values("empty") == [])
        #expect((bytes.count - 8 - file.tensors.reduce(0) { $0 + $1.dataOffsets.count }) % 8 == 0)
    }

    /// F16 and BF16 are read (widened exactly); integer dtypes are accepted in a file (LeRobot's statistics
    /// carry a `count`) but not read as values.
    @Test func halfPrecisionIsReadAndIntegersAreRefusedByName() throws {
        // F16: 1.0 = 0x3C00, -2.5 = 0xC100, 2^-24 = 0x0001 (subnormal), inf = 0x7C00.
        // BF16: 1.0 = 0x3F80, -0.5 = 0xBF00. I64: 7.
        let data: [UInt8] =
            [0x00, 0x3C, 0x00, 0xC1, 0x01, 0x00, 0x00, 0x7C, 0x80, 0x3F, 0x00, 0xBF] + [7, 0, 0, 0, 0, 0, 0, 0]
        let header = """
            {"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},\
            "n":{"dtype":"I64","shape":[1],"data_offsets":[12,20]}}
            """
        let file = try SafeTensorsFile(bytes: safetensorsBytes(header: header, data: data), file: "half.safetensors")
        #expect(try file.values("h") == [1, -2.5, 0x1p-24, .infinity])
        #expect(try file.values("b") == [1, -0.5])
        #expect(
            throws: SafeTensorsError(
                file: "half.safetensors", tensor: "n", "is I64; only F64, F32, F16 and BF16 are read")
        ) {
            try file.values("n")
        }
        let missing = #expect(throws: SafeTensorsError.self) { try file.values("nope") }
        #expect(
            missing?.description.contains("tensor \"nope\": is not in the file (it has 3 tensors: h, b, n)") == true)
    }

    /// Each way a file can be wrong is refused with the file, the tensor when one is at fault, and the
    /// reason.
    @Test func malformedFilesAreRefusedWithTheirReason() {
        let good = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let eight = [UInt8](repeating: 0, count: 8)
        let cases: [(String, [UInt8], String)] = [
            (
                "too short", [1, 0, 0],
                "test.safetensors: is 3 bytes long; a safetensors file starts with an 8-byte header length"
            ),
            (
                "header past the end", Array(safetensorsBytes(header: good, data: eight).prefix(30)),
                "is truncated: it declares a header of"
            ),
            (
                "header length huge", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7B],
                "declares a header of 18446744073709551615 bytes; the limit is"
            ),
            ("not JSON", safetensorsBytes(header: "PK\u{3}\u{4}", data: []), "the header does not start with '{'"),
            (
                "not UTF-8", [8, 0, 0, 0, 0, 0, 0, 0] + Array("{\"".utf8) + [0xC3, 0x28] + Array("\":1}".utf8),
                "the header is not valid UTF-8"
            ),
            (
                "trailing junk", safetensorsBytes(header: good + " x", data: eight),
                "unexpected bytes after the header's closing '}'"
            ),
            (
                "truncated data", safetensorsBytes(header: good, data: [0, 0, 0, 0]),
                "tensor \"w\": data_offsets [0, 8] reach past the data section, which is 4 bytes"
            ),
            (
                "extra data", safetensorsBytes(header: good, data: eight + [1]),
                "the data section is 9 bytes but its tensors cover 8"
            ),
            (
                "size mismatch",
                safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight),
                "tensor \"w\": data_offsets [0, 8] hold 8 bytes, but F32 [3] is 12 bytes"
            ),
            (
                "reversed",
                safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: eight),
                "ends before it begins"
            ),
            (
                "overlap",
                safetensorsBytes(
                    header:
                        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    data: eight), "tensor \"b\": data_offsets [4, 8] overlap tensor \"a\", which ends at 8"
            ),
            (
                "hole",
                safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight),
                "tensor \"a\": data_offsets [4, 8] leave bytes 0..<4 of the data section unused"
            ),
            (
                "duplicate tensor",
                safetensorsBytes(
                    header:
                        #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    data: eight), "key \"w\" appears twice in one object"
            ),
            (
                "unknown dtype",
                safetensorsBytes(header: #"{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,8]}}"#, data: eight),
                "tensor \"w\": unknown dtype \"F128\""
            ),
            (
                "negative dimension",
                safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eight),
                "shape holds a number that is not a non-negative 64-bit integer"
            ),
            (
                "overflowing shape",
                safetensorsBytes(
                    header: #"{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, data: eight),
                "overflows"
            ),
            (
                "fraction offset",
                safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}"#, data: eight),
                "is not [BEGIN, END] of non-negative integers"
            ),
            (
                "missing field", safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[2]}}"#, data: eight),
                "tensor \"w\": has no data_offsets"
            ),
            (
                "unknown field",
                safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}"#, data: eight),
                "unknown field \"x\""
            ),
            (
                "metadata not strings", safetensorsBytes(header: #"{"__metadata__":{"n":3}}"#, data: []),
                "__metadata__ \"n\" is 3; metadata values are strings"
            ),
            (
                "deep nesting",
                safetensorsBytes(
                    header: "{\"w\":" + String(repeating: "[", count: 50) + String(repeating: "]", count: 50) + "}",
                    data: []), "nested deeper than 8 levels"
            ),
            (
                "lone surrogate",
                safetensorsBytes(header: #"{"\udc00":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#, data: []),
                "a low surrogate"
            ),
            (
                "leading zero",
                safetensorsBytes(header: #"{"w":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}"#, data: eight),
                "leading zeros"
            ),
            (
                "not an object", safetensorsBytes(header: #"{"w":[1]}"#, data: []),
                "tensor \"w\": is described by an array, not an object"
            ),
        ]
        for (what, bytes, expected) in cases {
            let message = refusal(bytes)
            #expect(message.hasPrefix("test.safetensors: "), "\(what): \(message)")
            #expect(message.contains(expected), "\(what): \(message)")
        }
    }

    /// The caps hold before anything large is allocated: a header over the header cap, a file over the file
    /// cap, and on disk a device, a directory and a missing file.
    @Test func oversizedAndNonRegularInputsAreRefused() throws {
        let bytes = SafeTensorsFile.encode([.init(name: "w", shape: [64], values: .init(repeating: 1, count: 64))])
        let small = SafeTensorsFile.Limits(maximumFileBytes: 100, maximumHeaderBytes: 16)
        #expect(
            refusal(bytes, limits: small).contains("is \(bytes.count) bytes; the limit for a policy network is 100"))
        let headerCapped = SafeTensorsFile.Limits(maximumFileBytes: 1 << 20, maximumHeaderBytes: 16)
        #expect(refusal(bytes, limits: headerCapped).contains("the limit is 16"))

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("model.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(try SafeTensorsFile.load(path: path).tensors.count == 1)
        let cases: [(String, SafeTensorsFile.Limits, String)] = [
            (path, small, "model.safetensors: is \(bytes.count) bytes; the limit for a policy network is 100 bytes"),
            ("/dev/zero", .init(), "/dev/zero: is not a regular file"),
            (directory.path, .init(), "is a directory, not a file"),
            (directory.path + "/missing.safetensors", .init(), "missing.safetensors: no such file"),
        ]
        for (file, limits, expected) in cases {
            let error = #expect(throws: SafeTensorsError.self) { try SafeTensorsFile.load(path: file, limits: limits) }
            #expect(error?.description.contains(expected) == true, "\(error?.description ?? "accepted")")
        }
    }

    /// 12,000 mutants of valid files (bit flips, byte stores, truncations, insertions, deletions, a rewritten
    /// header length, numbers in the header replaced, chunks duplicated, headers and data spliced) through
    /// the parser and, when one is accepted, through reading every tensor and building a network: nothing
    /// crashes, and every refusal is a value naming the file.
    @Test func mutatedFilesNeverCrashTheReader() throws {
        let seeds: [[UInt8]] = [
            SafeTensorsFile.encode(
                [
                    .init(name: "layers.0.weight", shape: [3, 2], values: [1, 2, 3, 4, 5, 6]),
                    .init(name: "layers.0.bias", shape: [3], values: [0, 1, 2]),
                    .init(name: "layers.2.weight", dtype: .f64, shape: [1, 3], values: [1, -1, 0.5]),
                    .init(name: "observation.state.mean", shape: [2], values: [0, 0]),
                    .init(name: "observation.state.std", shape: [2], values: [1, 1]),
                ], metadata: ["activation": "tanh", "observation_normalization": "MEAN_STD"]),
            SafeTensorsFile.encode(
                [.init(name: "s", dtype: .f64, shape: [], values: [1]), .init(name: "e", shape: [0], values: [])]),
            safetensorsBytes(
                header:
                    #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}"#,
                data: [0, 0x3C, 0, 0xC0, 0x80, 0x3F]),
            SafeTensorsFile.encode(
                [
                    .init(name: "layers.0.weight", shape: [4, 3], values: (0..<12).map(Double.init)),
                    .init(name: "layers.0.bias", shape: [4], values: [1, 2, 3, 4]),
                ], metadata: ["activation": "relu"]),
        ]
        for seed in seeds { if case .failure(let error) = parse(seed) { Issue.record("seed refused: \(error)") } }
        var random = TestRandom(seed: 0x51_6E_65_77)
        var accepted = 0
        var refused = 0
        var reasons: [String: Int] = [:]
        let count = 12_000
        for n in 0..<count {
            let mutant = mutate(seeds[n % seeds.count], other: seeds[(n / seeds.count) % seeds.count], &random)
            let name = "mutant-\(n).safetensors"
            do {
                let file = try SafeTensorsFile(bytes: mutant, file: name)
                accepted += 1
                for tensor in file.tensors where tensor.dtype.isReadableAsDouble {
                    let values = try file.values(tensor.name)
                    #expect(values.count == tensor.elementCount, "\(name) \(tensor.name)")
                }
                _ = try? MLPNetwork.load(from: file, activation: .relu)
            } catch {
                refused += 1
                #expect(error.file == name)
                #expect(!error.message.isEmpty)
                let reason = error.message.split(separator: " ").prefix(3).joined(separator: " ")
                reasons[reason, default: 0] += 1
            }
        }
        let top = reasons.sorted { $0.value > $1.value }.prefix(8).map { "\($0.value)× \($0.key)…" }
        print("safetensors mutants: \(count), accepted \(accepted), refused \(refused); most common: \(top)")
        #expect(accepted + refused == count)
        #expect(accepted > 100 && refused > count / 2)
    }

    private func mutate(_ seed: [UInt8], other: [UInt8], _ random: inout TestRandom) -> [UInt8] {
        var bytes = seed
        let headerEnd = min(bytes.count, 8 + Int(bytes[0]) + Int(bytes[1]) << 8)
        let rounds = 1 + random.below(3)
        for _ in 0..<rounds where !bytes.isEmpty {
            switch random.below(9) {
            case 0:
                let at = random.below(bytes.count)
                bytes[at] ^= UInt8(1 << random.below(8))
            case 1:
                let interesting: [UInt8] = [0, 0xFF, 0x7B, 0x7D, 0x22, 0x2C, 0x5B, 0x5D, 0x39, 0x30, 0x2D, 0x5C, 0x80]
                bytes[random.below(bytes.count)] = interesting[random.below(interesting.count)]
            case 2:
                bytes = Array(bytes.prefix(random.below(bytes.count)))
            case 3:
                let at = random.below(bytes.count + 1)
                bytes.insert(contentsOf: (0..<(1 + random.below(9))).map { _ in UInt8(random.below(256)) }, at: at)
            case 4:
                let at = random.below(bytes.count)
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + random.below(16)))
            case 5:
                let lengths: [UInt64] = [
                    0, 1, UInt64(max(0, headerEnd - 7)), UInt64(max(0, headerEnd - 9)), UInt64(bytes.count), .max,
                    1 << 40,
                ]
                let value = lengths[random.below(lengths.count)]
                if bytes.count >= 8 {
                    for k in 0..<8 { bytes[k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
                }
            case 6:
                // A number in the header becomes another: offsets and dimensions off by one, zero, huge.
                let digits = (8..<max(8, min(bytes.count, headerEnd))).filter { (0x30...0x39).contains(bytes[$0]) }
                if let at = digits.isEmpty ? nil : digits[random.below(digits.count)] {
                    let replacements = [
                        "0", "1", "9", "4294967296", "18446744073709551615", "99999999999999999999", "-1", "1e3", "7.5",
                    ]
                    bytes.replaceSubrange(at...at, with: Array(replacements[random.below(replacements.count)].utf8))
                }
            case 7:
                let start = random.below(bytes.count)
                let chunk = Array(bytes[start..<min(bytes.count, start + 1 + random.below(40))])
                bytes.insert(contentsOf: chunk, at: random.below(bytes.count + 1))
            default:
                // The header of one file with the data of another.
                let otherHeaderEnd = min(other.count, 8 + Int(other[0]) + Int(other[1]) << 8)
                bytes = Array(bytes.prefix(headerEnd)) + Array(other.suffix(from: otherHeaderEnd))
            }
        }
        return bytes
    }
}
