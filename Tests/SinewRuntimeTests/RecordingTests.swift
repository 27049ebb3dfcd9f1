import CAllocCounter
import Foundation
import SinewRuntime
import Synchronization
import Testing

/// Runs `body` on a new thread and waits for it.
func onNewThread(_ body: @escaping @Sendable () -> Void) {
    let done = Atomic<Bool>(false)
    let thread = Thread {
        body()
        done.store(true, ordering: .releasing)
    }
    thread.start()
    while !done.load(ordering: .acquiring) { usleep(1_000) }
}

final class ProducerResult: @unchecked Sendable {
    var allocations: UInt64 = .max
    var pushedOK = 0
}

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("sinew-\(getpid())-\(name)").path
}

@Suite("Recording") struct RecordingTests {
    @Test("a producer thread's snapshots reach the CSV file in order; the producer allocates nothing")
    func csvRoundTrip() throws {
        let recorder = TickRecorder(jointNames: ["shoulder_pan", "gripper"], capacity: 20_000)
        let path = temporaryPath("rec.csv")
        defer { unlink(path) }
        let writer = try RecordingWriter(recorder: recorder, path: path, format: .csv, pollIntervalSeconds: 0.001)
        let result = ProducerResult()
        let ticks = 10_000
        onNewThread {
            let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: 8)
            defer { values.deallocate() }
            func produce(_ tick: Int) {
                for j in 0..<2 {
                    values[j] = Double(tick) * 0.001 + Double(j)
                    values[2 + j] = Double(-j)
                    values[4 + j] = 0.25
                    values[6 + j] = Double(tick) * 0.5
                }
                let header = TickSnapshotHeader(
                    tick: Int64(tick), timeSeconds: Double(tick) * 0.001, state: tick < ticks - 1 ? .active : .safe,
                    safetyCause: tick < ticks - 1 ? nil : .effortLimit, wakeLatenessNs: 1_000 + Int64(tick),
                    stageNs: (1, 2, 3, 4, 5, 6))
                if recorder.push(
                    header, positionRad: values.baseAddress!, velocityRadPerS: values.baseAddress! + 2,
                    effortNm: values.baseAddress! + 4, commandRad: values.baseAddress! + 6)
                {
                    result.pushedOK += 1
                }
            }
            produce(0)
            let before = sinew_thread_allocations()
            for tick in 1..<ticks { produce(tick) }
            result.allocations = sinew_thread_allocations() - before
        }
        try writer.close()
        #expect(result.allocations == 0)
        #expect(result.pushedOK == ticks)
        #expect(recorder.dropped == 0)
        #expect(writer.snapshotsWritten == ticks)

        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        try #require(lines.count == ticks + 1)
        #expect(
            lines[0]
                == "tick,t_s,state,safety_cause,wake_lateness_ns,sense_ns,estimate_ns,decide_ns,guard_ns,act_ns,record_ns,"
                + "shoulder_pan.position_rad,shoulder_pan.velocity_rad_s,shoulder_pan.effort_nm,shoulder_pan.command_rad,"
                + "gripper.position_rad,gripper.velocity_rad_s,gripper.effort_nm,gripper.command_rad")
        #expect(lines[1] == "0,0.0,active,,1000,1,2,3,4,5,6,0.0,0.0,0.25,0.0,1.0,-1.0,0.25,0.0")
        let last = lines[ticks].split(separator: ",", omittingEmptySubsequences: false)
        try #require(last.count == 19)
        #expect(last[0] == "9999")
        #expect(last[2] == "safe")
        #expect(last[3] == "effortLimit")
        #expect(Double(last[11]) == 9.999)
        for (k, line) in lines.dropFirst().enumerated() {
            guard line.split(separator: ",", maxSplits: 1).first == Substring("\(k)") else {
                Issue.record("line \(k + 1) out of order: \(line)")
                break
            }
        }
    }

    @Test("a full ring drops snapshots and counts them instead of blocking")
    func dropsWhenFull() throws {
        let recorder = TickRecorder(jointNames: ["j"], capacity: 8)
        var value = 1.0
        for tick in 0..<20 {
            _ = recorder.push(
                TickSnapshotHeader(tick: Int64(tick)), positionRad: &value, velocityRadPerS: &value,
                effortNm: &value, commandRad: &value)
        }
        #expect(recorder.committed == 8)
        #expect(recorder.dropped == 12)
        let path = temporaryPath("drop.csv")
        defer { unlink(path) }
        let writer = try RecordingWriter(recorder: recorder, path: path)
        try writer.close()
        #expect(writer.snapshotsWritten == 8)
        #expect(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count == 9)
    }

    @Test("an observer sees every snapshot on the writer thread, with or without a file")
    func observerOnly() throws {
        let recorder = TickRecorder(jointNames: ["j"], capacity: 64)
        let seen = Atomic<Int>(0)
        let tickSum = Atomic<Int64>(0)
        let writer = try RecordingWriter(recorder: recorder, path: nil, pollIntervalSeconds: 0.001) { slot in
            seen.add(1, ordering: .relaxed)
            tickSum.add(slot.header.pointee.tick, ordering: .relaxed)
        }
        var value = 0.5
        var pushed = 0
        while pushed < 500 {
            if recorder.push(
                TickSnapshotHeader(tick: Int64(pushed)), positionRad: &value, velocityRadPerS: &value,
                effortNm: &value, commandRad: &value)
            {
                pushed += 1
            } else {
                usleep(200)
            }
        }
        try writer.close()
        #expect(seen.load(ordering: .relaxed) == 500)
        #expect(tickSum.load(ordering: .relaxed) == 499 * 500 / 2)
        #expect(writer.snapshotsWritten == 500)
    }
}
