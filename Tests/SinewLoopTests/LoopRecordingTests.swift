import CAllocCounter
import Foundation
import SinewDrivers
import SinewRuntime
import Testing

func temporaryFile(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("sinew-loop-\(getpid())-\(name)").path
}

@Suite(.serialized) struct LoopRecordingTests {
    /// With a recorder attached, the whole tick still allocates nothing, over 10,000 ticks, while the writer
    /// thread drains the ring into a file.
    @Test func recordingKeepsTheTickAllocationFree() throws {
        // Patient deadlines: a retry's throw would count as an allocation under Swift Testing.
        let rig = try SimulatedRig(wireTiming: false, runMarginNs: 200_000_000)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let recorder = rig.loop.attachRecorder(decimation: 1, capacity: 16_384)
        let path = temporaryFile("alloc.csv")
        defer { unlink(path) }
        let writer = try RecordingWriter(recorder: recorder, path: path, pollIntervalSeconds: 0.001)
        let body = CountingBody(loop: rig.loop, countFrom: 200, countTo: 10_200)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .asFastAsPossible, maxTicks: 20_000), body: body)
        let report = try scheduler.run()
        try writer.close()
        #expect(report.ticks >= 10_200)
        #expect(body.allocationsAtEnd - body.allocationsAtStart == 0, "allocations on the loop thread")
        #expect(recorder.committed + recorder.dropped == Int(report.ticks))
        #expect(writer.snapshotsWritten == recorder.committed)
        #expect(recorder.committed > 0)
    }

    /// The simulated rig follows its trajectory with recording on: every `decimation`-th tick is in the CSV,
    /// in order, with the measured state, the guarded command and the policy's target per joint.
    @Test func recordingWritesTheDecimatedTicksToCSV() throws {
        let rig = try SimulatedRig(wireTiming: false)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let recorder = rig.loop.attachRecorder(decimation: 4, capacity: 4096)
        let path = temporaryFile("rig.csv")
        defer { unlink(path) }
        let writer = try RecordingWriter(recorder: recorder, path: path, pollIntervalSeconds: 0.001)
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 500), maxTicks: 400), body: rig.loop)
        let report = try scheduler.run()
        try writer.close()
        #expect(report.ticks == 400)
        #expect(recorder.dropped == 0)

        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        try #require(lines.count == 1 + 100)
        let header = lines[0].split(separator: ",").map(String.init)
        let names = rig.configuration.joints.map(\.name)
        try #require(!names.isEmpty)
        try #require(header.count == 11 + 5 * names.count)
        #expect(Array(header.prefix(5)) == ["tick", "t_s", "state", "safety_cause", "wake_lateness_ns"])
        #expect(
            Array(header[11..<16]) == [
                "\(names[0]).position_rad", "\(names[0]).velocity_rad_s", "\(names[0]).effort_nm",
                "\(names[0]).command_rad", "\(names[0]).target_rad",
            ])
        var previousTime = -1.0
        var worstTracking = 0.0
        for (k, line) in lines.dropFirst().enumerated() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == header.count else {
                Issue.record("line \(k + 2) has \(fields.count) fields: \(line)")
                break
            }
            #expect(Int(fields[0]) == 4 * k)
            #expect(fields[2] == "active")
            let t = try #require(Double(fields[1]))
            #expect(t > previousTime)
            previousTime = t
            #expect((Int64(fields[5]) ?? 0) > 0, "sense stage time")
            for j in 0..<names.count {
                let position = try #require(Double(fields[11 + 5 * j]))
                let command = try #require(Double(fields[14 + 5 * j]))
                let target = try #require(Double(fields[15 + 5 * j]))
                #expect(abs(command - target) < 0.051, "the guard changes a command by at most max_step")
                worstTracking = max(worstTracking, abs(position - target))
            }
        }
        #expect(worstTracking < 0.2)
        // The last snapshot is the loop's last recorded tick: its target is the loop's current target.
        let last = lines[lines.count - 1].split(separator: ",", omittingEmptySubsequences: false)
        try #require(last.count == header.count)
        for j in 0..<names.count {
            #expect(abs((Double(last[15 + 5 * j]) ?? .nan) - rig.loop.targetPositionRad[j]) < 0.02)
        }
    }

    /// Live wake-up lateness for status lines: the window holds the most recent ticks' values.
    @Test func latenessWindowKeepsTheRecentTicks() throws {
        let window = LatenessWindow(capacity: 100)
        #expect(window.percentiles().count == 0)
        for ns in 1...1000 { window.append(Int64(ns * 1000)) }
        let p = window.percentiles()
        #expect(p.count == 100)
        #expect(p.p50Us == 950)
        #expect(p.p99Us == 999)
        let rig = try SimulatedRig(wireTiming: false)
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let scheduler = Scheduler(
            configuration: SchedulerConfiguration(rate: .fixed(hertz: 500), maxTicks: 50), body: rig.loop)
        _ = try scheduler.run()
        #expect(rig.loop.recentLateness.count == 50)
        #expect(rig.loop.recentLateness.percentiles().p99Us > 0)
    }
}

@Suite(.serialized) struct LoopCalibrationTests {
    func calibration(for rig: SimulatedRig, zeroShift: Int64 = 0, modelNumber: UInt16? = nil) throws
        -> CalibrationFile
    {
        let catalog = try ServoCatalog.load(directory: "\(repositoryRoot)/Hardware/servos")
        let joints = try rig.configuration.joints.map { joint throws -> CalibrationFile.Joint in
            let servo = try #require(catalog.model(named: joint.servoModel))
            let zero = Int64(servo.countsPerTurn / 2)
            return CalibrationFile.Joint(
                joint: joint.name, bus: joint.bus, servoID: UInt8(joint.servoID), servoModel: joint.servoModel,
                modelNumber: servo.modelNumber, zeroCounts: zero, minCounts: zero - 1000, maxCounts: zero + 1000)
        }
        var file = CalibrationFile(robot: rig.configuration.name, recorded: "test", joints: joints)
        try #require(!file.joints.isEmpty)
        file.joints[0].zeroCounts += zeroShift
        if let modelNumber {
            try #require(file.joints.count > 2)
            file.joints[2].modelNumber = modelNumber
        }
        return file
    }

    /// The joints read through their calibrated zero: a zero 100 counts further on moves the measured
    /// joint position back by 100 counts' worth.
    @Test func calibratedZeroCountsShiftTheJointPositions() throws {
        let probe = try SimulatedRig(wireTiming: false)
        let rig = try SimulatedRig(wireTiming: false, calibration: calibration(for: probe, zeroShift: 100))
        try rig.loop.lifecycle.configure()
        try rig.loop.lifecycle.activate()
        let pan = try #require(rig.configuration.joints.first)
        let countsPerRad = rig.loop.mappings[0].countsPerRad
        // shoulder_pan turns about the vertical: gravity leaves it where the simulation put it.
        let panInModel = try #require(rig.model.jointIndex(named: pan.name))
        let truth = rig.robot.positions[panInModel]
        let measured = rig.loop.supervisor.measuredPositionRad[0]
        #expect(abs(measured - (truth - 100 / countsPerRad)) < 2 / countsPerRad, "\(measured) vs \(truth)")
        #expect(rig.loop.mappings[0].zeroCounts == 2048 + 100)
    }

    /// A servo whose model number differs from the one its joint was calibrated on is refused at configure
    /// time, naming the joint.
    @Test func aSwappedServoIsRefusedAtConfigure() throws {
        let probe = try SimulatedRig(wireTiming: false)
        let rig = try SimulatedRig(wireTiming: false, calibration: calibration(for: probe, modelNumber: 1234))
        do {
            try rig.loop.lifecycle.configure()
            Issue.record("configure accepted a swapped servo")
        } catch {
            let message = "\(error)"
            #expect(message.contains("elbow_flex"), "\(message)")
            #expect(message.contains("swapped"), "\(message)")
            #expect(message.contains("test-calibration.json"), "\(message)")
        }
        #expect(rig.loop.lifecycle.state == .unconfigured)
    }

    /// Position limits wider than the range of motion recorded at calibration are reported, per joint.
    @Test func limitsBeyondTheCalibratedRangeAreReported() throws {
        let probe = try SimulatedRig(wireTiming: false)
        var file = try calibration(for: probe)
        for i in file.joints.indices {
            file.joints[i].minCounts = 0
            file.joints[i].maxCounts = 4095
        }
        #expect(try SimulatedRig(wireTiming: false, calibration: file).loop.limitsBeyondCalibratedRange().isEmpty)
        try #require(file.joints.count > 1)
        file.joints[1].maxCounts = 2048 + 300
        let warnings = try SimulatedRig(wireTiming: false, calibration: file).loop.limitsBeyondCalibratedRange()
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("shoulder_lift") == true, "\(warnings)")
    }

    /// A joint missing from the calibration file is refused too.
    @Test func aJointWithoutCalibrationIsRefused() throws {
        let probe = try SimulatedRig(wireTiming: false)
        var file = try calibration(for: probe)
        try #require(!file.joints.isEmpty)
        file.joints.removeLast()
        let rig = try SimulatedRig(wireTiming: false, calibration: file)
        #expect(throws: (any Error).self) { try rig.loop.lifecycle.configure() }
    }
}
