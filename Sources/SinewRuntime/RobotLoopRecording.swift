import Foundation
import SinewBus
import SinewDrivers
import SinewFusion

extension RobotLoop {
    /// Makes the record stage push a snapshot every `decimation`-th tick into a new recorder, and returns
    /// the recorder (hand it to a `RecordingWriter`). Call before the scheduler starts. Snapshots carry,
    /// per joint, the measured position/velocity/effort, the guarded command sent to the servo and the
    /// policy's target.
    /// - Parameter capacity: snapshots the ring holds (4096 ≈ 8 s at 500 Hz before the writer must drain).
    public func attachRecorder(decimation: Int = 1, capacity: Int = 4096) -> TickRecorder {
        let recorder = TickRecorder(
            jointNames: configuration.joints.map(\.name), capacity: capacity, recordsTarget: true)
        recordingDecimation = Int64(max(decimation, 1))
        self.recorder = recorder
        return recorder
    }

    /// CLOCK_REALTIME, ns (a vDSO call: no system call, no allocation).
    @inline(__always)
    static func wallClockNs() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    /// Record stage: copies this tick into the ring (allocation-free; a full ring drops the snapshot).
    @inline(__always)
    func pushSnapshot(_ recorder: TickRecorder, _ tick: TickInfo) {
        guard let slot = recorder.reserve() else { return }
        let state = lifecycle.state
        // In lockstep simulation the robot lives in simulated time: record that, not the wall clock.
        var timeSeconds = tick.secondsSinceStart
        if let clock = simulationClock { timeSeconds = Double(clock.nanoseconds - activatedAtSimulatedNs) * 1e-9 }
        var header = TickSnapshotHeader(
            tick: tick.index, timeSeconds: timeSeconds, state: state,
            safetyCause: state == .safe ? supervisor.safeStateCause : nil, wakeLatenessNs: tick.latenessNs,
            stageNs: (
                tick.stageNs.0, tick.stageNs.1, tick.stageNs.2, tick.stageNs.3, tick.stageNs.4, lastRecordStageNs
            ))
        header.wallTimeNs = Self.wallClockNs()
        header.loopTimeNs = observation.timeNs
        header.commandTimeNs = command.computedForNs
        if observation.hasOrientation {
            let q = observation.linkOrientation
            header.imuOrientation = (q.w, q.x, q.y, q.z)
            header.imuValid = true
            if let imu {
                let sample = imu.lastSample
                let w = imu.mountingInLink.rotate(sample.angularVelocityRadPerS)
                let a = imu.mountingInLink.rotate(sample.specificForceMPerS2)
                header.imuAngularVelocityRadPerS = (w.x, w.y, w.z)
                header.imuLinearAccelerationMPerS2 = (a.x, a.y, a.z)
                header.imuRatesValid = true
            }
        }
        var fresh: UInt64 = 0
        for j in 0..<min(recorder.jointCount, 64) where supervisor.readingFresh[j] { fresh |= 1 << UInt64(j) }
        header.freshJoints = fresh
        header.busErrorsThisTick = Int32(truncatingIfNeeded: busErrorsThisTick)
        header.failingBusIndex = Int16(truncatingIfNeeded: failingBusIndex)
        header.busDisconnected = busDisconnectedThisTick
        header.shutdownRequested = tick.shutdownRequested
        header.busErrorTotal = Int64(busErrorTotal.load(ordering: .relaxed))
        header.overrunsInARow = Int32(truncatingIfNeeded: tick.overrunsInARow)
        header.safetyEventCount = Int32(truncatingIfNeeded: supervisor.events.count)
        slot.header.pointee = header
        for j in 0..<recorder.jointCount {
            slot.positionRad[j] = supervisor.measuredPositionRad[j]
            slot.velocityRadPerS[j] = supervisor.measuredVelocityRadPerS[j]
            slot.effortNm[j] = supervisor.measuredEffortNm[j]
            slot.commandRad[j] = supervisor.outputPositionRad[j]
            if recorder.recordsTarget {
                slot.targetRad[j] = targetPositionRad[j]
                slot.velocityGoalRadPerS[j] = supervisor.outputVelocityRadPerS[j]
                slot.effortGoalNm[j] = supervisor.outputEffortNm[j]
            }
        }
        recorder.commit()
    }

    /// The observation the policy started from and the command it answered (activation or recovery), for a
    /// replay to start the policy where the run did. Not on the tick: the loop is stopped.
    func pushStartSnapshot(recovering: Bool) {
        guard let recorder, let slot = recorder.reserve() else { return }
        var header = TickSnapshotHeader(tick: -1, timeSeconds: 0, state: lifecycle.state)
        header.kind = recovering ? .recovery : .activation
        header.wallTimeNs = Self.wallClockNs()
        header.loopTimeNs = observation.timeNs
        header.commandTimeNs = command.computedForNs
        if observation.hasOrientation {
            let q = observation.linkOrientation
            header.imuOrientation = (q.w, q.x, q.y, q.z)
            header.imuValid = true
        }
        header.safetyEventCount = Int32(truncatingIfNeeded: supervisor.events.count)
        slot.header.pointee = header
        for j in 0..<recorder.jointCount {
            slot.positionRad[j] = observation.positionRad[j]
            slot.velocityRadPerS[j] = observation.velocityRadPerS[j]
            slot.effortNm[j] = observation.effortNm[j]
            slot.commandRad[j] = supervisor.commandedPositionRad[j]
            if recorder.recordsTarget {
                slot.targetRad[j] = targetPositionRad[j]
                slot.velocityGoalRadPerS[j] = command.velocityRadPerS[j]
                slot.effortGoalNm[j] = command.effortNm[j]
            }
        }
        recorder.commit()
    }

    /// Configure: the joint's calibration entry must have been recorded on this bus, servo ID and model, and
    /// the servo must report the model number it had then. Coupled second servos have no entry of their own.
    func checkCalibration(bus: BusLink, slot: Int, reportedModelNumber: UInt16) throws(RobotLoopError) {
        guard let calibration else { return }
        let joint = configuration.joints[bus.joints[slot]]
        guard joint.servoID == Int(bus.ids[slot]) else { return }
        do {
            try calibration.check(
                joint: joint.name, bus: bus.name, servoID: bus.ids[slot], servoModel: joint.servoModel,
                reportedModelNumber: reportedModelNumber, file: calibrationSource)
        } catch {
            throw RobotLoopError(
                "\(error)", location: RobotErrorLocation(bus: bus.name, servoID: Int(bus.ids[slot]), joint: joint.name))
        }
    }

    /// Joints whose position limits reach further than the range of motion recorded at calibration: the
    /// policy may command a pose the arm was never seen to reach. One line per joint, for warnings at start.
    /// - Parameter toleranceRad: how far a limit may pass the recorded range without a warning.
    public func limitsBeyondCalibratedRange(toleranceRad: Double = 0.05) -> [String] {
        guard let calibration else { return [] }
        var warnings: [String] = []
        for (j, joint) in configuration.joints.enumerated() {
            guard let entry = calibration.entry(forJoint: joint.name) else { continue }
            let a = mappings[j].jointPositionRad(counts: entry.minCounts)
            let b = mappings[j].jointPositionRad(counts: entry.maxCounts)
            let limits = supervisor.configuration.joints[j]
            if limits.positionMinRad < min(a, b) - toleranceRad || limits.positionMaxRad > max(a, b) + toleranceRad {
                let f = { (x: Double) in String(format: "%.3f", x) }
                warnings.append(
                    "joint \"\(joint.name)\": position limits [\(f(limits.positionMinRad)), \(f(limits.positionMaxRad))] rad "
                        + "reach beyond the range recorded at calibration [\(f(min(a, b))), \(f(max(a, b)))] rad")
            }
        }
        return warnings
    }
}
