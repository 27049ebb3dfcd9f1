import CAllocCounter
import Foundation
import SinewCore
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

private let threeRows = """
    t_s,a,b
    0.0,0.0,1.0
    0.5,0.2,0.5
    1.0,0.4,0.0
    """

@Suite struct JointMotionParsingTests {
    @Test func readsHeaderRowsCommentsAndLineEndings() throws {
        let text =
            "\u{FEFF}# a recording\r\n\r\n  t_s , shoulder_pan,gripper\r\n# pause\r\n10.0,0.1,-0.2\r\n10.25, 0.15 ,-0.1\r\n\n"
        let motion = try JointMotion.parse(text, file: "m.csv")
        #expect(motion.jointNames == ["shoulder_pan", "gripper"])
        #expect(motion.headerLine == 3 && motion.jointColumns == [9, 22])
        #expect(motion.rowLines == [5, 6])
        #expect(motion.startTimeS == 10 && motion.durationS == 0.25)
        #expect(motion.positionRad(row: 1, joint: 0) == 0.15 && motion.positionRad(row: 1, joint: 1) == -0.1)
        #expect(motion.jointIndex(named: "gripper") == 1)
    }

    /// One bad input, and the error it must give: kind, line, column (0: none).
    struct Case: Sendable, CustomTestStringConvertible {
        var text: String
        var kind: JointMotionError.Kind
        var line: Int
        var column: Int
        var mentions: String
        var testDescription: String { "\(kind) at \(line):\(column)" }
    }

    @Test(arguments: [
        Case(text: "t_s,a\n0,1\n0.1,x\n", kind: .notANumber, line: 3, column: 5, mentions: "'x' is not a number"),
        Case(text: "t_s,a\n0,1\n0.1,\n", kind: .notANumber, line: 3, column: 5, mentions: "empty field"),
        Case(text: "t_s,a\n0,1\nabc,1\n", kind: .notANumber, line: 3, column: 1, mentions: "time"),
        Case(text: "t_s,a\n0,nan\n0.1,1\n", kind: .notFinite, line: 2, column: 3, mentions: "finite"),
        Case(text: "t_s,a\n0,1\n0.1,-inf\n", kind: .notFinite, line: 3, column: 5, mentions: "finite"),
        Case(text: "t_s,a\ninf,1\n", kind: .notFinite, line: 2, column: 1, mentions: "time"),
        Case(text: "t_s,a\n0,1\n0.2,1\n0.1,1\n", kind: .timeNotIncreasing, line: 4, column: 1, mentions: "line 3"),
        Case(text: "t_s,a\n0,1\n0,2\n", kind: .timeNotIncreasing, line: 3, column: 1, mentions: "10 µs"),
        Case(text: "t_s,a\n0,1\n", kind: .tooFewRows, line: 2, column: 0, mentions: "at least 2"),
        Case(text: "t_s,a\n", kind: .tooFewRows, line: 1, column: 0, mentions: "0 rows"),
        Case(text: "# nothing\n\n", kind: .missingHeader, line: 0, column: 0, mentions: "t_s"),
        Case(text: "", kind: .missingHeader, line: 0, column: 0, mentions: "header"),
        Case(text: "time,a\n0,1\n1,2\n", kind: .badHeader, line: 1, column: 1, mentions: "t_s"),
        Case(text: "t_s\n0\n1\n", kind: .badHeader, line: 1, column: 1, mentions: "no joint"),
        Case(text: "t_s,a,,b\n", kind: .badHeader, line: 1, column: 7, mentions: "empty joint name"),
        Case(text: "t_s,a,b,a\n", kind: .badHeader, line: 1, column: 9, mentions: "two columns"),
        Case(text: "t_s,\"a\"\n", kind: .badHeader, line: 1, column: 5, mentions: "not a joint name"),
        Case(text: "t_s,a,b\n0,1,2\n1,2\n", kind: .wrongFieldCount, line: 3, column: 0, mentions: "2 fields"),
        Case(text: "t_s,a\n0,1,2\n", kind: .wrongFieldCount, line: 2, column: 0, mentions: "3 fields"),
        Case(text: "t_s,a\n0,100.5\n", kind: .outOfRange, line: 2, column: 3, mentions: "100"),
        Case(text: "t_s,a\n2e10,1\n", kind: .outOfRange, line: 2, column: 1, mentions: "1e10"),
        Case(
            text: "t_s," + (0..<65).map { "j\($0)" }.joined(separator: ",") + "\n", kind: .tooManyJoints, line: 1,
            column: 0, mentions: "64"),
        Case(
            text: "t_s,a\n0,1\n0.1," + String(repeating: "1", count: 80) + "\n", kind: .notANumber, line: 3, column: 5,
            mentions: "not a number"),
    ])
    func errorsNameTheFileLineAndColumn(_ bad: Case) {
        do {
            _ = try JointMotion.parse(bad.text, file: "bad.csv")
            Issue.record("parsed: \(bad.text)")
        } catch {
            #expect(error.kind == bad.kind, "\(error)")
            #expect(error.location.file == "bad.csv")
            #expect(error.location.line == bad.line, "\(error)")
            #expect(error.location.column == bad.column, "\(error)")
            #expect(error.description.contains(bad.mentions), "\(error)")
            #expect(error.description.hasPrefix("bad.csv"))
        }
    }

    @Test func oversizedAndNonTextInputsAreRefused() throws {
        let huge = [UInt8](repeating: UInt8(ascii: "1"), count: JointMotion.maximumFileBytes + 1)
        #expect(throws: JointMotionError.self) { try JointMotion.parse(bytes: huge, file: "huge.csv") }
        do {
            _ = try JointMotion.parse(bytes: [0x74, 0x5F, 0x73, 0xFF, 0x0A], file: "binary.csv")
            Issue.record("binary accepted")
        } catch {
            #expect(error.kind == .notText)
        }
        // A file on disk over the limit is refused before it is read (a sparse file: no disk used).
        let path = NSTemporaryDirectory() + "sinew-motion-\(getpid())-\(UUID().uuidString).csv"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("t_s,a\n".utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(JointMotion.maximumFileBytes) + 1)
        try handle.close()
        do {
            _ = try JointMotion.load(contentsOf: path)
            Issue.record("oversized file accepted")
        } catch {
            #expect(error.kind == .tooLarge && error.description.contains("at most"))
        }
        for (file, kind) in [
            ("/nonexistent-sinew.csv", JointMotionError.Kind.unreadableFile), ("/tmp", .unreadableFile),
        ] {
            do {
                _ = try JointMotion.load(contentsOf: file)
                Issue.record("\(file) accepted")
            } catch {
                #expect(error.kind == kind && error.location.file == file)
            }
        }
    }

    @Test func valuesAreCheckedLikeAFile() {
        #expect(throws: JointMotionError.self) {
            try JointMotion(jointNames: ["a"], timesS: [0, 0], positionsRad: [[0], [1]])
        }
        #expect(throws: JointMotionError.self) {
            try JointMotion(jointNames: ["a"], timesS: [0, 1], positionsRad: [[0], [.nan]])
        }
        #expect(throws: JointMotionError.self) {
            try JointMotion(jointNames: [], timesS: [0, 1], positionsRad: [[], []])
        }
        #expect(throws: JointMotionError.self) {
            try JointMotion(jointNames: ["a"], timesS: [0, 1], positionsRad: [[0]])
        }
    }

    @Test func shippedMotionsParse() throws {
        for robot in ["so101", "dxl6"] {
            let path = "\(repositoryRoot)/Hardware/robots/\(robot)/motions/pick-and-place.csv"
            let motion = try JointMotion.load(contentsOf: path)
            #expect(motion.jointCount == 6)
            #expect(motion.durationS > 20 && motion.durationS < 30, "\(robot): \(motion.durationS) s")
            #expect(motion.endsWhereItStarts, "\(robot) loops seamlessly")
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? .max
            #expect(size < 300_000)
        }
    }
}

@Suite struct JointMotionPlaybackMathTests {
    @Test func passesThroughEveryRowWithContinuousVelocity() throws {
        let motion = try JointMotion.parse(threeRows, file: "m.csv")
        for row in 0..<motion.rowCount {
            let sample = motion.sample(atS: motion.timeS(row: row))
            for j in 0..<2 { #expect(abs(sample.positionsRad[j] - motion.positionRad(row: row, joint: j)) < 1e-12) }
        }
        // Velocity is continuous across every knot (C1), the closing one and the loop's seam included.
        for k in 1..<motion.knotTimesS.count {
            let t = motion.knotTimesS[k]
            let before = motion.sample(atS: t - 1e-9).velocitiesRadPerS
            let after = motion.sample(atS: t + 1e-9).velocitiesRadPerS
            for j in 0..<2 { #expect(abs(before[j] - after[j]) < 1e-5, "knot \(k) joint \(j)") }
        }
        // Velocity is the derivative of position.
        for t in stride(from: 0.05, through: motion.loopPeriodS - 0.05, by: 0.1) {
            let h = 1e-6
            let slope = zip(motion.sample(atS: t + h).positionsRad, motion.sample(atS: t - h).positionsRad)
                .map { ($0 - $1) / (2 * h) }
            for j in 0..<2 {
                #expect(abs(slope[j] - motion.sample(atS: t).velocitiesRadPerS[j]) < 1e-5)
            }
        }
    }

    /// A file that ends away from its start returns to it at ≤ 0.5 rad/s on average, then loops.
    @Test func loopsThroughAClosingSegment() throws {
        let motion = try JointMotion.parse(threeRows, file: "m.csv")
        #expect(!motion.endsWhereItStarts)
        // The largest travel back is 1.0 rad (joint b, 0 → 1): 2 s at 0.5 rad/s.
        #expect(abs(motion.loopPeriodS - 3.0) < 1e-12)
        let first = motion.sample(atS: 0.3)
        let again = motion.sample(atS: 0.3 + 2 * motion.loopPeriodS)
        for j in 0..<2 {
            #expect(abs(first.positionsRad[j] - again.positionsRad[j]) < 1e-12)
            #expect(abs(first.velocitiesRadPerS[j] - again.velocitiesRadPerS[j]) < 1e-9)
        }
        #expect(motion.sample(atS: motion.loopPeriodS).positionsRad == [0.0, 1.0])
        // Times no clock should give play the start.
        for t in [-1.0, .nan, .infinity] { #expect(motion.sample(atS: t).positionsRad == [0.0, 1.0]) }
    }

    @Test func aFileThatEndsWhereItStartsLoopsWithoutAClosingSegment() throws {
        let motion = try JointMotion.parse("t_s,a\n0,0\n1,1\n2,0\n", file: "m.csv")
        #expect(motion.endsWhereItStarts && motion.loopPeriodS == 2)
        #expect(abs(motion.sample(atS: 0.5).positionsRad[0] - motion.sample(atS: 2.5).positionsRad[0]) < 1e-12)
    }

    /// 100,000 samples forward through the shipped motion, looping, without one heap allocation.
    @Test func samplingAllocatesNothing() throws {
        let motion = try JointMotion.load(
            contentsOf: "\(repositoryRoot)/Hardware/robots/so101/motions/pick-and-place.csv")
        let positions = UnsafeMutableBufferPointer<Double>.allocate(capacity: motion.jointCount)
        let velocities = UnsafeMutableBufferPointer<Double>.allocate(capacity: motion.jointCount)
        defer {
            positions.deallocate()
            velocities.deallocate()
        }
        var segment = 0
        var sum = 0.0
        motion.sample(atS: 0, segment: &segment, positionsRad: positions, velocitiesRadPerS: velocities)
        let before = sinew_thread_allocations()
        for k in 0..<100_000 {
            motion.sample(
                atS: Double(k) * 0.001, segment: &segment, positionsRad: positions, velocitiesRadPerS: velocities)
            sum += positions[0]
        }
        #expect(sinew_thread_allocations() - before == 0)
        #expect(sum.isFinite)
    }
}

/// A small deterministic generator (SplitMix64) for the mutation test.
private struct Mutator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}

@Suite struct JointMotionMutationTests {
    /// 20,000 seeded mutants of a real motion file (bytes flipped, inserted, deleted, lines repeated or
    /// swapped, numbers replaced by hostile ones): each parses or fails with an error that names the file and a
    /// line that exists; nothing crashes, and every motion that parses plays back finite numbers.
    @Test func mutatedMotionFilesParseOrFailClearly() throws {
        let shipped = try String(
            contentsOfFile: "\(repositoryRoot)/Hardware/robots/so101/motions/pick-and-place.csv", encoding: .utf8)
        let seedLines = Array(shipped.split(separator: "\n", omittingEmptySubsequences: false).prefix(40))
        let seed = Array(seedLines.joined(separator: "\n").utf8)
        let tokens = [
            ",", "\n", "\r\n", "-", "e", "9", ".", "nan", "inf", "-0", "1e308", "0x1p3", "#", "t_s", " ", "\u{FEFF}",
            "1e-400", "\"", "\0", "é",
        ].map { Array($0.utf8) }
        var random = Mutator(state: 0x5EED_1E4D)
        var parsed = 0
        for _ in 0..<20_000 {
            var bytes = seed
            for _ in 0...random.below(4) {
                switch random.below(6) {
                case 0 where !bytes.isEmpty: bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes.insert(contentsOf: tokens[random.below(tokens.count)], at: random.below(bytes.count + 1))
                case 2 where !bytes.isEmpty:
                    let start = random.below(bytes.count)
                    bytes.removeSubrange(start..<min(bytes.count, start + 1 + random.below(40)))
                case 3:
                    var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                    if lines.count > 2 { lines.swapAt(random.below(lines.count), random.below(lines.count)) }
                    bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
                case 4:
                    var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                    if !lines.isEmpty { lines.insert(lines[random.below(lines.count)], at: random.below(lines.count)) }
                    bytes = Array(lines.joined(separator: [UInt8(ascii: "\n")]))
                default:
                    bytes = Array(bytes.prefix(random.below(bytes.count + 1)))
                }
            }
            let lineCount = bytes.filter { $0 == UInt8(ascii: "\n") }.count + 1
            do {
                let motion = try JointMotion.parse(bytes: bytes, file: "mutant.csv")
                parsed += 1
                for t in [0, motion.loopPeriodS * 0.37, motion.loopPeriodS * 1.5] {
                    let sample = motion.sample(atS: t)
                    #expect(
                        sample.positionsRad.allSatisfy(\.isFinite) && sample.velocitiesRadPerS.allSatisfy(\.isFinite))
                }
            } catch {
                #expect(error.location.file == "mutant.csv")
                #expect(error.location.line >= 0 && error.location.line <= lineCount, "\(error)")
                #expect(!error.problem.isEmpty)
            }
        }
        // Most single mutations of a good file leave a good file (a digit changed) or are caught: both happen.
        #expect(parsed > 100 && parsed < 20_000, "\(parsed) of 20000 mutants parsed")
    }
}

@Suite struct SimulationClockGroupTests {
    final class Clock: SimulationClock {
        var nanoseconds: UInt64 = 0
        var calls = 0
        func advance(toNanoseconds target: UInt64) {
            calls += 1
            if target > nanoseconds { nanoseconds = target }
        }
    }

    @Test func advancesEveryClockAndTellsTheFirstOnesTime() {
        let follower = Clock()
        let leader = Clock()
        leader.nanoseconds = 7
        let group = SimulationClockGroup([follower, leader])
        group.advance(toNanoseconds: 2_000_000)
        #expect(follower.nanoseconds == 2_000_000 && leader.nanoseconds == 2_000_000)
        follower.nanoseconds = 2_000_500  // a lockstep read moved the first clock on
        #expect(group.nanoseconds == 2_000_500)
        let before = sinew_thread_allocations()
        for k in 1...10_000 { group.advance(toNanoseconds: 2_000_000 + UInt64(k) * 2_000_000) }
        #expect(sinew_thread_allocations() - before == 0)
        #expect(follower.calls == 10_001 && leader.calls == 10_001)
        #expect(leader.nanoseconds == 20_002_000_000)
        let empty = SimulationClockGroup([])
        empty.advance(toNanoseconds: 5)
        #expect(empty.nanoseconds == 5)
    }
}
