import Foundation
import SinewPolicy
import SinewRuntime
import SinewTwin
import Testing

/// The real-arm episode recorder of `sinew record --backend pty|serial` fed synthetic ticks through the runtime's
/// ring and writer thread, as a run feeds it: 100 ticks a second of loop time, every joint at `0.1 · t` rad and its
/// target 0.01 rad ahead. Each key is pressed only after the writer has taken every tick pushed before it, so it
/// acts on the next tick: the whole session is decided by the ticks' loop time and the keys, nothing by the clock.
@Suite struct ArmEpisodeRecorderTests {
    static let setup = try! twinSetup("reach.yaml")
    static let right: [UInt8] = [0x1B, 0x5B, 0x43]
    static let left: [UInt8] = [0x1B, 0x5B, 0x44]

    final class Session {
        let recorder: ArmEpisodeRecorder
        let ring: TickRecorder
        let writer: RecordingWriter
        var lines: [String] = []
        private var tick: Int64 = 0
        private let positions: [Double]

        init(episodes: Int, episodeTimeS: Double, resetTimeS: Double) {
            let setup = ArmEpisodeRecorderTests.setup
            let conversion = LeRobotJointConversion(
                units: .rad, configuration: setup.configuration, model: setup.model)
            recorder = ArmEpisodeRecorder(
                configuration: setup.configuration, model: setup.model, task: setup.task, conversion: conversion,
                episodes: episodes, episodeTimeS: episodeTimeS, resetTimeS: resetTimeS, fps: 10, seed: 7)
            ring = TickRecorder(
                jointNames: setup.configuration.joints.map(\.name), capacity: 1 << 16, recordsTarget: true)
            writer = RecordingWriter(recorder: ring, path: nil, sinks: [recorder], pollIntervalSeconds: 0.001)
            positions = Array(repeating: 0, count: setup.configuration.joints.count)
        }

        /// Loop time of tick `index`, s.
        static func timeS(_ index: Int64) -> Double { Double(index) / 100 }

        /// `count` ticks in `state`, then waits until the writer has handed every one to the recorder.
        func ticks(_ count: Int, state: LifecycleState = .active, shutdownRequested: Bool = false) {
            for _ in 0..<count {
                var header = TickSnapshotHeader(tick: tick, timeSeconds: Self.timeS(tick), state: state)
                header.shutdownRequested = shutdownRequested
                let q = positions.map { _ in 0.1 * Self.timeS(tick) }
                let target = q.map { $0 + 0.01 }
                ring.push(
                    header, positionRad: q, velocityRadPerS: positions, effortNm: positions, commandRad: target,
                    targetRad: target)
                tick += 1
            }
            while writer.snapshotsWritten < Int(tick) { usleep(500) }
            lines += recorder.newLines()
        }

        func press(_ bytes: [UInt8]) { for byte in bytes { recorder.keyByte(byte) } }

        /// Closes the writer (the end of the run) and returns what was printed.
        func close() throws -> [String] {
            try writer.close()
            return lines + recorder.newLines()
        }
    }

    /// Episodes that run out their time and resets that run out theirs: 1 s at 10 fps is 10 frames, frame k taken
    /// at the tick k/fps after the episode's start (its state 0.1 · t, its action the target), the environment the
    /// reach target drawn from seed + i; the session ends by itself after the last episode, with no reset after it.
    @Test func timeEndsEpisodesAndResets() throws {
        let session = Session(episodes: 2, episodeTimeS: 1, resetTimeS: 0.5)
        session.ticks(300)
        #expect(session.recorder.isDone && session.recorder.recordedAll)
        let lines = try session.close()
        let episodes = session.recorder.keptEpisodes
        #expect(episodes.map(\.state.count) == [10, 10])
        #expect(lines.filter { $0.hasPrefix("reset:") }.count == 1, "\(lines)")
        #expect(lines.contains("all 2 episodes recorded"), "\(lines)")
        // Episode 1 starts at the first tick (t = 0), frame 0 at the next; episode 2 after 1 s and a 0.5 s reset.
        for (e, startS) in [(0, 0.0), (1, 1.5)] {
            for (k, row) in episodes[e].state.enumerated() {
                let due = startS + max(0.01, Double(k) / 10)
                #expect(abs(row[0] - 0.1 * due) < 0.1 * 0.0101, "episode \(e) frame \(k): \(row[0]) at \(due) s")
                #expect(abs(episodes[e].action[k][0] - row[0] - 0.01) < 1e-9)
            }
        }
        let targets = episodes.map { $0.environment.first ?? [] }
        #expect(targets.allSatisfy { $0.count == 3 } && targets[0] != targets[1])
        #expect(episodes.allSatisfy { episode in episode.environment.allSatisfy { $0 == episode.environment[0] } })
        #expect(session.recorder.seed(ofEpisode: 1) == 8)
        #expect(lines.contains { $0.contains("seed 7: target_m [") } && lines.contains { $0.contains("seed 8: ") })
    }

    /// ← while recording discards the episode and a reset follows; → skips the reset; → ends an episode early (kept);
    /// ← during the reset after it discards that episode and records it again at once; Esc ends the session, the
    /// episode in progress kept as far as it got (as lerobot-record keeps it).
    @Test func keysDecideEpisodes() throws {
        let session = Session(episodes: 3, episodeTimeS: 600, resetTimeS: 600)
        session.ticks(50)
        session.press(Self.left)
        session.ticks(2)
        #expect(session.recorder.statusText.hasPrefix("RESET before episode 1/3"), "\(session.recorder.statusText)")
        session.press(Self.right)
        session.ticks(30)
        #expect(session.recorder.statusText.hasPrefix("REC episode 1/3"))
        session.press(Self.right)
        session.ticks(1)
        #expect(session.recorder.keptEpisodes.map(\.state.count) == [3], "29 ticks: frames at 0.01, 0.1, 0.2 s")
        session.press(Self.left)
        session.ticks(25)
        #expect(session.recorder.keptEpisodes.isEmpty, "← in the reset after a kept episode discards it")
        #expect(session.recorder.statusText.hasPrefix("REC episode 1/3"))
        session.press(Self.right)
        session.ticks(1)
        session.press(Self.right)
        session.ticks(1)
        #expect(session.recorder.statusText.hasPrefix("REC episode 2/3"), "\(session.recorder.statusText)")
        session.ticks(20)
        session.recorder.escapeKey()
        session.ticks(1)
        #expect(session.recorder.isDone && session.recorder.endedByEscape)
        let lines = try session.close()
        #expect(session.recorder.keptEpisodes.map(\.state.count) == [3, 3], "20 ticks of episode 2: 0.01, 0.1, 0.2 s")
        #expect(session.recorder.discardedEpisodes == 2, "the first take and the take ← discarded in the reset")
        #expect(lines.contains("episode 1/3: discarded; it is recorded again after the reset"), "\(lines)")
        #expect(
            lines.contains("episode 1/3: the episode before this reset is discarded; recording it again"), "\(lines)")
        #expect(lines.last == "Esc: the recording session ends with 2 episode(s) kept", "\(lines)")
    }

    /// A second → queued behind the one that skipped a reset finds an episode without a frame: it is ignored, no
    /// empty episode is kept.
    @Test func aBouncedRightKeepsNoEmptyEpisode() throws {
        let session = Session(episodes: 2, episodeTimeS: 600, resetTimeS: 600)
        session.ticks(10)
        session.press(Self.right)
        session.ticks(1)
        session.press(Self.right)
        session.press(Self.right)
        session.ticks(5)
        #expect(session.recorder.statusText.hasPrefix("REC episode 2/2"), "\(session.recorder.statusText)")
        _ = try session.close()
        #expect(session.recorder.keptEpisodes.map(\.state.count) == [1])
    }

    /// The robot leaving the active state mid-episode (an e-stop) discards the episode; once it is active again a
    /// reset comes first, then the episode again. A shutdown request (Ctrl-C) ends the session with the episode in
    /// progress cut short, and says nothing of a safety event.
    @Test func aSafeStateDiscardsTheEpisodeAndAShutdownCutsItShort() throws {
        let session = Session(episodes: 2, episodeTimeS: 600, resetTimeS: 0.2)
        session.ticks(30)
        session.ticks(10, state: .safe)
        #expect(session.recorder.statusText.hasPrefix("WAIT episode 1/2"))
        session.ticks(10)
        #expect(session.recorder.statusText.hasPrefix("RESET before episode 1/2"))
        session.ticks(30)
        #expect(session.recorder.statusText.hasPrefix("REC episode 1/2"))
        session.ticks(3, state: .safe, shutdownRequested: true)
        let lines = try session.close()
        #expect(session.recorder.keptEpisodes.isEmpty && session.recorder.episodeCutShort)
        #expect(session.recorder.discardedEpisodes == 2)
        #expect(lines.filter { $0.contains("left the active state") }.count == 1, "\(lines)")
        #expect(lines.contains { $0.contains("episode 1/2 in progress is discarded") }, "\(lines)")
    }

    /// Terminal bytes are outside input: 20 000 seeded random bytes without ESC register no key (the session stays
    /// in its reset), and the decoder still reads the next arrow; ESC O C (application cursor mode) is → too, and a
    /// longer sequence (Page Up, ESC [ 5 ~) is no arrow.
    @Test func noiseOnTheTerminalPressesNoKey() throws {
        let session = Session(episodes: 2, episodeTimeS: 600, resetTimeS: 600)
        session.ticks(2)
        session.press(Self.right)
        session.ticks(2)
        var random = SplitMix64(seed: 2026)
        for _ in 0..<20_000 {
            var byte = UInt8(truncatingIfNeeded: random.next())
            if byte == 0x1B { byte = 0x5B }
            session.recorder.keyByte(byte)
        }
        session.press([0x1B, 0x5B, 0x35, 0x7E])
        session.ticks(5)
        #expect(session.recorder.statusText.hasPrefix("RESET before episode 2/2"), "\(session.recorder.statusText)")
        session.press([0x1B, 0x4F, 0x43])
        session.ticks(2)
        #expect(session.recorder.statusText.hasPrefix("REC episode 2/2"), "\(session.recorder.statusText)")
        _ = try session.close()
    }
}
