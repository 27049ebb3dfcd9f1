import SinewBus

/// Runs an encoder into a scratch buffer and returns the bytes it wrote.
func encoded(_ capacity: Int = 512, _ body: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: capacity)
    let n = try out.withUnsafeMutableBytes { try body($0) }
    return Array(out[0..<n])
}

/// Small deterministic PRNG (xorshift64*), so fuzz failures reproduce.
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}

/// Collects the decoded frames of a Dynamixel stream as (id, instruction, payload) values.
func drain(_ decoder: DynamixelStreamDecoder) -> (frames: [(ServoID, UInt8, [UInt8])], corrupt: Int) {
    var frames: [(ServoID, UInt8, [UInt8])] = []
    var corrupt = 0
    loop: while true {
        switch decoder.next() {
        case .frame(let f): frames.append((f.id, f.instruction.rawValue, Array(f.payload)))
        case .corrupt: corrupt += 1
        case .needMoreData: break loop
        }
    }
    return (frames, corrupt)
}

func drain(_ decoder: FeetechStreamDecoder) -> (frames: [(ServoID, UInt8, [UInt8])], corrupt: Int) {
    var frames: [(ServoID, UInt8, [UInt8])] = []
    var corrupt = 0
    loop: while true {
        switch decoder.next() {
        case .frame(let f): frames.append((f.id, f.code, Array(f.parameters)))
        case .corrupt: corrupt += 1
        case .needMoreData: break loop
        }
    }
    return (frames, corrupt)
}
