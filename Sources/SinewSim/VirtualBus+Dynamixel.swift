import SinewBus
import SinewDrivers

/// Dynamixel Protocol 2.0, servo side: each instruction's effect and the status packets, over the
/// SinewBus codec (the same decoder and encoder the bus master uses).
extension VirtualBus {
    enum DynamixelError: UInt8 {
        case none = 0, resultFail = 1, instruction = 2, crc = 3, dataRange = 4, dataLength = 5, dataLimit = 6
        case access = 7

        init(_ outcome: AccessOutcome) {
            switch outcome {
            case .ok: self = .none
            case .dataRange: self = .dataRange
            case .dataLength: self = .dataLength
            case .dataLimit: self = .dataLimit
            case .accessError: self = .access
            case .resultFail: self = .resultFail
            }
        }
    }

    func drainDynamixel(atNs: UInt64) {
        while true {
            switch dynamixelDecoder.next() {
            case .needMoreData:
                return
            case .corrupt(let id, _):
                advance(toNs: atNs)
                guard beginRequest(length: Dynamixel.instructionOverhead, atNs: atNs) else { continue }
                statistics.badChecksums += 1
                // The X series answers a packet with a bad CRC with a CRC error, when it was addressed.
                if id != ServoID.broadcast, let index = hearingServo(id: id), servos[index].statusReturnLevel >= 1 {
                    sendStatus(index: index, error: .crc, count: 0)
                }
                endRequest()
            case .frame(let frame):
                guard !frame.isStatus else { continue }
                advance(toNs: atNs)
                guard beginRequest(length: Dynamixel.instructionOverhead + frame.payload.count, atNs: atNs) else {
                    continue
                }
                handle(DynamixelRequest(frame), id: frame.id)
                endRequest()
            }
        }
    }

    func handle(_ request: DynamixelRequest, id: UInt8) {
        let broadcast = id == ServoID.broadcast
        switch request {
        case .ping:
            if broadcast {
                for index in idOrder where hears(index) { sendPing(index: index) }
            } else if let index = hearingServo(id: id) {
                sendPing(index: index)
            }
        case .read(let address, let length):
            guard !broadcast, let index = hearingServo(id: id), servos[index].statusReturnLevel >= 1 else { return }
            sendRead(index: index, address: Int(address), length: Int(length))
        case .write(let address, let data):
            forEachAddressed(id) { index in
                let outcome = servos[index].hostWrite(address: Int(address), data: data)
                if !broadcast && servos[index].statusReturnLevel >= 2 {
                    sendStatus(index: index, error: DynamixelError(outcome), count: 0)
                }
            }
        case .regWrite(let address, let data):
            forEachAddressed(id) { index in
                let outcome = servos[index].register(address: Int(address), data: data)
                if !broadcast && servos[index].statusReturnLevel >= 2 {
                    sendStatus(index: index, error: DynamixelError(outcome), count: 0)
                }
            }
        case .action:
            forEachAddressed(id) { index in
                let outcome = servos[index].action()
                if !broadcast && servos[index].statusReturnLevel >= 2 {
                    sendStatus(index: index, error: DynamixelError(outcome), count: 0)
                }
            }
        case .factoryReset(let option):
            guard !broadcast, let index = hearingServo(id: id) else { return }
            let servo = servos[index]
            guard option == 0xFF || option == 0x01 || option == 0x02 else {
                if servo.statusReturnLevel >= 2 { sendStatus(index: index, error: .dataRange, count: 0) }
                return
            }
            // The reply leaves with the old settings; the reset follows.
            if servo.statusReturnLevel >= 2 { sendStatus(index: index, error: .none, count: 0) }
            servo.factoryReset(mode: option)
        case .reboot:
            guard !broadcast, let index = hearingServo(id: id) else { return }
            if servos[index].statusReturnLevel >= 2 { sendStatus(index: index, error: .none, count: 0) }
            servos[index].reboot()
        case .clear:
            // Multi-turn reset: accepted; the simulator keeps its absolute position.
            guard !broadcast, let index = hearingServo(id: id) else { return }
            if servos[index].statusReturnLevel >= 2 { sendStatus(index: index, error: .none, count: 0) }
        case .syncRead(let address, let length, let ids):
            for slot in 0..<ids.count {
                guard let index = hearingServo(id: ids[slot]), servos[index].statusReturnLevel >= 1 else { continue }
                sendRead(index: index, address: Int(address), length: Int(length))
            }
        case .fastSyncRead(let address, let length, let ids):
            fastSyncRead(address: Int(address), length: Int(length), ids: ids)
        case .syncWrite(let address, let length, let records):
            let stride = Int(length) + 1
            var slot = 0
            while slot + stride <= records.count {
                if let index = hearingServo(id: records[slot]) {
                    _ = servos[index].hostWrite(
                        address: Int(address),
                        data: UnsafeRawBufferPointer(rebasing: records[(slot + 1)..<(slot + stride)]))
                }
                slot += stride
            }
        case .bulkRead(let records):
            var slot = 0
            while slot + 5 <= records.count {
                let address = Int(records.loadUInt16(at: slot + 1))
                let length = Int(records.loadUInt16(at: slot + 3))
                if let index = hearingServo(id: records[slot]), servos[index].statusReturnLevel >= 1 {
                    sendRead(index: index, address: address, length: length)
                }
                slot += 5
            }
        case .bulkWrite(let records):
            var slot = 0
            while slot + 5 <= records.count {
                let address = Int(records.loadUInt16(at: slot + 1))
                let length = Int(records.loadUInt16(at: slot + 3))
                guard slot + 5 + length <= records.count else { return }
                if length > 0, let index = hearingServo(id: records[slot]) {
                    _ = servos[index].hostWrite(
                        address: address,
                        data: UnsafeRawBufferPointer(rebasing: records[(slot + 5)..<(slot + 5 + length)]))
                }
                slot += 5 + length
            }
        case .fastBulkRead, .malformed:
            // FAST_BULK_READ is not modelled: answered like an unknown instruction.
            if !broadcast, let index = hearingServo(id: id), servos[index].statusReturnLevel >= 1 {
                sendStatus(index: index, error: .instruction, count: 0)
            }
        }
    }

    @inline(__always)
    func forEachAddressed(_ id: UInt8, _ body: (Int) -> Void) {
        for index in servos.indices where (id == ServoID.broadcast || servos[index].busID == id) && hears(index) {
            servos[index].lastInstructionNs = timeNs
            body(index)
        }
    }

    func hearingServo(id: UInt8) -> Int? {
        for index in servos.indices where servos[index].busID == id && hears(index) {
            servos[index].lastInstructionNs = timeNs
            return index
        }
        return nil
    }

    func sendRead(index: Int, address: Int, length: Int) {
        let outcome =
            length > Self.bufferCapacity - 16
            ? AccessOutcome.dataLength : servos[index].hostRead(address: address, length: length, into: payload)
        sendStatus(index: index, error: DynamixelError(outcome), count: outcome == .ok ? length : 0)
    }

    /// Encodes and queues a status packet from servo `index` with `count` parameter bytes from `payload`.
    func sendStatus(index: Int, error: DynamixelError, count: Int) {
        let servo = servos[index]
        var errorByte = error.rawValue
        if servo.hardwareErrorBits != 0 { errorByte |= Dynamixel.alertBit }
        let length: Int
        do {
            length = try Dynamixel.encodeStatus(
                id: servo.busID, error: errorByte, parameters: UnsafeRawBufferPointer(start: payload, count: count),
                into: UnsafeMutableRawBufferPointer(start: packet, count: 2 * Self.bufferCapacity))
        } catch {
            return
        }
        enqueue(count: length, servoIndex: index)
    }

    func sendPing(index: Int) {
        let model = servos[index].model
        payload[0] = UInt8(truncatingIfNeeded: model.modelNumber)
        payload[1] = UInt8(truncatingIfNeeded: model.modelNumber >> 8)
        payload[2] = model.firmwareVersion
        sendStatus(index: index, error: .none, count: 3)
    }

    /// The listed servos fill one status packet (ID 0xFE) in turn. A missing servo leaves the packet cut
    /// short where its entry would begin, as on the wire.
    func fastSyncRead(address: Int, length: Int, ids: UnsafeRawBufferPointer) {
        let count = min(ids.count, 253)
        guard count > 0, count * length <= Self.bufferCapacity - 16 else { return }
        var answered = 0
        var firstIndex = -1
        for slot in 0..<count {
            fastIDs[slot] = ids[slot]
            fastErrors[slot] = 0
            guard answered == slot, let index = hearingServo(id: ids[slot]), servos[index].statusReturnLevel >= 1
            else {
                (payload + slot * length).initialize(repeating: 0, count: length)
                continue
            }
            if firstIndex < 0 { firstIndex = index }
            let outcome = servos[index].hostRead(address: address, length: length, into: payload + slot * length)
            var errorByte = DynamixelError(outcome).rawValue
            if servos[index].hardwareErrorBits != 0 { errorByte |= Dynamixel.alertBit }
            fastErrors[slot] = errorByte
            answered += 1
        }
        guard firstIndex >= 0 else { return }
        var total: Int
        do {
            total = try Dynamixel.encodeFastSyncReadReply(
                ids: UnsafeBufferPointer(start: fastIDs, count: count),
                errors: UnsafeBufferPointer(start: fastErrors, count: count), length: UInt16(length),
                data: UnsafeRawBufferPointer(start: payload, count: count * length),
                into: UnsafeMutableRawBufferPointer(start: packet, count: 2 * Self.bufferCapacity))
        } catch {
            return
        }
        if answered < count { total = min(total, 8 + answered * (4 + length)) }
        enqueue(count: total, servoIndex: firstIndex)
    }
}
