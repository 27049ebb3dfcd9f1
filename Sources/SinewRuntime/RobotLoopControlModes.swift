import SinewBus
import SinewDrivers

/// Joints driven by velocity or effort: their servos run in velocity or current mode, take their goals in
/// sync writes to the servos concerned, and go back to position control for the safe state.
///
/// Operating Mode is an EEPROM register that Dynamixel servos take only with torque off, so a switch is
/// torque off → mode → goal → torque on: in the tick it costs four short sync writes and leaves the joint
/// without torque for the time of two of them (tens of µs at 1 Mbit/s).
extension RobotLoop {
    /// The mode joint `j`'s (first) servo runs in now.
    func controlMode(ofJoint j: Int) -> UInt8 {
        let (b, slot) = jointSlots[j]
        return b >= 0 ? buses[b].slotMode[slot] : ServoControlMode.position.rawValue
    }

    /// Sends the subset of servos in `bus.subsetIDs[0..<count]` one register each from `bus.subsetData`.
    @inline(__always)
    func syncWriteSubset(_ bus: BusLink, count: Int, spec: RegisterSpec) throws(BusError) {
        try bus.master.syncWrite(
            ids: UnsafeBufferPointer(rebasing: bus.subsetIDs[0..<count]), address: UInt16(spec.address),
            length: spec.size, data: UnsafeRawBufferPointer(rebasing: bus.subsetData[0..<(count * spec.size)]))
    }

    /// Puts `value` (the same for each) in the subset buffer for the servos listed in `bus.subsetSlots`.
    @inline(__always)
    func fillSubset(_ bus: BusLink, count: Int, spec: RegisterSpec, value: Int64) {
        for k in 0..<count {
            bus.subsetIDs[k] = bus.ids[bus.subsetSlots[k]]
            spec.store(value, into: bus.subsetData, at: k * spec.size, littleEndian: bus.littleEndian)
        }
    }

    /// The act stage's goals for servos in velocity and current mode (real-time: no allocation).
    func writeOtherModeGoals(_ bus: BusLink) throws(BusError) {
        try writeGoals(bus, mode: .velocity)
        try writeGoals(bus, mode: .current)
    }

    private func writeGoals(_ bus: BusLink, mode: ServoControlMode) throws(BusError) {
        guard let spec = mode == .velocity ? bus.goalVelocitySpec : bus.goalCurrentSpec else { return }
        var count = 0
        for slot in 0..<bus.ids.count where bus.slotMode[slot] == mode.rawValue {
            let j = bus.joints[slot]
            let m = mappings[j]
            var raw: Int64
            if mode == .velocity {
                raw = m.rawVelocity(forJointVelocityRadPerS: supervisor.outputVelocityRadPerS[j])
            } else {
                raw = m.rawCurrent(forCurrentA: m.currentA(forJointEffortNm: supervisor.outputEffortNm[j]))
            }
            if let low = spec.minimum { raw = max(raw, low) }
            if let high = spec.maximum { raw = min(raw, high) }
            bus.subsetIDs[count] = bus.ids[slot]
            spec.store(raw, into: bus.subsetData, at: count * spec.size, littleEndian: bus.littleEndian)
            count += 1
        }
        if count > 0 { try syncWriteSubset(bus, count: count, spec: spec) }
    }

    /// In the safe state: servos of `hold` joints that run in velocity or current mode go back to position
    /// control at the hold position the act stage put in `bus.writeBuffer` (real-time: no allocation).
    func switchHoldServosToPosition(_ bus: BusLink) throws(BusError) {
        var count = 0
        for slot in 0..<bus.ids.count where bus.slotMode[slot] != ServoControlMode.position.rawValue {
            guard supervisor.outputTorqueEnabled[bus.joints[slot]] else { continue }
            bus.subsetSlots[count] = slot
            count += 1
        }
        guard count > 0, let modeSpec = bus.operatingModeSpec,
            let positionMode = bus.servoModel.operatingModeValue(for: .position)
        else { return }
        fillSubset(bus, count: count, spec: bus.torqueSpec, value: 0)
        try syncWriteSubset(bus, count: count, spec: bus.torqueSpec)
        fillSubset(bus, count: count, spec: modeSpec, value: positionMode)
        try syncWriteSubset(bus, count: count, spec: modeSpec)
        let size = bus.goalSpec.size
        for k in 0..<count {
            let slot = bus.subsetSlots[k]
            for byte in 0..<size { bus.subsetData[k * size + byte] = bus.writeBuffer[slot * size + byte] }
        }
        try syncWriteSubset(bus, count: count, spec: bus.goalSpec)
        fillSubset(bus, count: count, spec: bus.torqueSpec, value: 1)
        try syncWriteSubset(bus, count: count, spec: bus.torqueSpec)
        for k in 0..<count {
            let slot = bus.subsetSlots[k]
            bus.slotMode[slot] = ServoControlMode.position.rawValue
            supervisor.jointControlMode[bus.joints[slot]] = ServoControlMode.position.rawValue
        }
    }

    /// Activation and recovery (not real-time): servos the safe state left in position control go back to
    /// the mode the policy drives them in, torque off while the mode is written.
    func restoreControlModes() throws(RobotLoopError) {
        for bus in buses where bus.drivesOtherModes {
            for slot in 0..<bus.ids.count where bus.slotMode[slot] != bus.wantedMode[slot].rawValue {
                let joint = configuration.joints[bus.joints[slot]].name
                guard let mode = bus.servoModel.operatingModeValue(for: bus.wantedMode[slot]) else { continue }
                try writeRegister(bus, id: bus.ids[slot], joint: joint, name: "Torque Enable", value: 0)
                try writeRegister(bus, id: bus.ids[slot], joint: joint, name: "Operating Mode", value: mode)
                torqueOnAtServo[bus.joints[slot]] = false
                bus.slotMode[slot] = bus.wantedMode[slot].rawValue
            }
        }
    }

    /// Before torque goes on (not real-time): velocity and current goals are zero, so a servo in those modes
    /// starts still (an X-series servo powers up with Goal Current at its limit).
    func zeroVelocityAndCurrentGoals() throws(RobotLoopError) {
        for bus in buses where bus.drivesOtherModes {
            for mode in ServoControlMode.allCases where mode != .position {
                guard let spec = mode == .velocity ? bus.goalVelocitySpec : bus.goalCurrentSpec else { continue }
                var count = 0
                for slot in 0..<bus.ids.count where bus.slotMode[slot] == mode.rawValue {
                    bus.subsetSlots[count] = slot
                    count += 1
                }
                guard count > 0 else { continue }
                fillSubset(bus, count: count, spec: spec, value: 0)
                do {
                    try syncWriteSubset(bus, count: count, spec: spec)
                } catch {
                    throw RobotLoopError(
                        "bus \"\(bus.name)\": cannot zero the \(mode.word) goals before torque on: \(error)",
                        location: RobotErrorLocation(bus: bus.name))
                }
            }
        }
    }

    /// Shutdown (not real-time): servos of `hold` joints still in velocity or current mode go back to position
    /// control at their present position, so they hold still after the process is gone. Returns a line per
    /// servo that could not be switched.
    func returnHoldServosToPosition() -> [String] {
        var failures: [String] = []
        for bus in buses where bus.drivesOtherModes {
            guard let positionMode = bus.servoModel.operatingModeValue(for: .position) else { continue }
            for slot in 0..<bus.ids.count where bus.slotMode[slot] != ServoControlMode.position.rawValue {
                let j = bus.joints[slot]
                guard configuration.joints[j].safeState == .hold else { continue }
                let id = bus.ids[slot]
                let joint = configuration.joints[j].name
                do throws(RobotLoopError) {
                    try writeRegister(bus, id: id, joint: joint, name: "Torque Enable", value: 0)
                    try writeRegister(bus, id: id, joint: joint, name: "Operating Mode", value: positionMode)
                    let present = try readPresentCounts(bus, slot: slot)
                    try writeRegister(bus, id: id, joint: joint, name: "Goal Position", value: present)
                    bus.slotMode[slot] = ServoControlMode.position.rawValue
                } catch {
                    failures.append("servo \(id) (joint \"\(joint)\") on bus \"\(bus.name)\": \(error)")
                }
            }
        }
        return failures
    }

    private func readPresentCounts(_ bus: BusLink, slot: Int) throws(RobotLoopError) -> Int64 {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: bus.positionSpec.size, alignment: 8)
        defer { bytes.deallocate() }
        do {
            try bus.master.read(id: bus.ids[slot], address: UInt16(bus.positionSpec.address), into: bytes)
        } catch {
            throw RobotLoopError(
                "bus \"\(bus.name)\": servo \(bus.ids[slot]): reading Present Position: \(error)",
                location: RobotErrorLocation(bus: bus.name, servoID: Int(bus.ids[slot])))
        }
        return bus.positionSpec.load(from: UnsafeRawBufferPointer(bytes), at: 0, littleEndian: bus.littleEndian)
    }
}
