import SinewDrivers

/// Dynamixel Protocol 2.0, servo side: request parsing, status packets, and each instruction's effect.
extension VirtualBus {
    /// CRC-16 (polynomial 0x8005, init 0, no reflection), as the Protocol 2.0 manual defines it.
    @inline(__always)
    static func dynamixelCRC(_ bytes: UnsafePointer<UInt8>, count: Int, continuing start: UInt16 = 0) -> UInt16 {
        var crc = start
        for index in 0..<count {
            crc ^= UInt16(bytes[index]) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x8005 : crc << 1 }
        }
        return crc
    }

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

    func parseDynamixel(atNs: UInt64) {
        while requestCount >= 4 {
            var start = 0
            while start + 3 < requestCount
                && !(request[start] == 0xFF && request[start + 1] == 0xFF && request[start + 2] == 0xFD
                    && request[start + 3] == 0x00)
            {
                start += 1
            }
            if start + 3 >= requestCount {
                // No header yet: keep a possible partial header at the end.
                let keep = min(3, requestCount)
                statistics.discardedBytes += requestCount - keep
                consume(requestCount - keep)
                return
            }
            if start > 0 {
                statistics.discardedBytes += start
                consume(start)
            }
            if requestCount < 7 { return }
            let length = Int(request[5]) | Int(request[6]) << 8
            if length < 3 || 7 + length > Self.bufferCapacity {
                statistics.discardedBytes += 1
                consume(1)
                continue
            }
            let total = 7 + length
            if requestCount < total { return }
            handleDynamixelPacket(total: total, atNs: atNs)
            consume(total)
        }
    }

    func handleDynamixelPacket(total: Int, atNs: UInt64) {
        advance(toNs: atNs)
        _ = beginRequest(length: total, atNs: atNs)
        let id = request[4]
        let instruction = request[7]
        let received = UInt16(request[total - 2]) | UInt16(request[total - 1]) << 8
        if Self.dynamixelCRC(request, count: total - 2) != received {
            statistics.badChecksums += 1
            if id != 0xFE, let index = hearingServo(id: id), servos[index].statusReturnLevel >= 1 {
                sendStatus(index: index, error: .crc, count: 0)
            }
            endRequest()
            return
        }
        let paramCount = unstuff(from: 8, to: total - 2)
        let broadcast = id == 0xFE
        switch instruction {
        case 0x01: handlePing(id: id)
        case 0x02: if !broadcast { handleRead(id: id, paramCount: paramCount) }
        case 0x03: handleWrite(id: id, paramCount: paramCount, registered: false)
        case 0x04: handleWrite(id: id, paramCount: paramCount, registered: true)
        case 0x05: handleAction(id: id)
        case 0x06, 0x08, 0x10: handleReset(id: id, instruction: instruction, paramCount: paramCount)
        case 0x82, 0x8A: handleSyncRead(paramCount: paramCount, fast: instruction == 0x8A)
        case 0x83: handleSyncWrite(paramCount: paramCount)
        case 0x92: handleBulkRead(paramCount: paramCount)
        case 0x93: handleBulkWrite(paramCount: paramCount)
        default:
            if !broadcast, let index = hearingServo(id: id), servos[index].statusReturnLevel >= 1 {
                sendStatus(index: index, error: .instruction, count: 0)
            }
        }
        endRequest()
    }

    /// Copies the parameters of the request into `params`, removing byte stuffing; returns their count.
    func unstuff(from start: Int, to end: Int) -> Int {
        var count = 0
        var index = start
        while index < end {
            let byte = request[index]
            params[count] = byte
            count += 1
            // FF FF FD FD → FF FF FD: the stuffing byte follows an FF FF FD that begins at the INST byte or later.
            if byte == 0xFD && index + 1 < end && request[index + 1] == 0xFD && count >= 3 && params[count - 2] == 0xFF
                && params[count - 3] == 0xFF && index - 2 >= 7
            {
                index += 1
            }
            index += 1
        }
        return count
    }

    func hearingServo(id: UInt8) -> Int? {
        for index in servos.indices where servos[index].busID == id && hears(index) { return index }
        return nil
    }

    /// Builds and queues a status packet from servo `index` with `count` parameter bytes taken from `payload`.
    func sendStatus(index: Int, error: DynamixelError, count: Int) {
        let servo = servos[index]
        var errorByte = error.rawValue
        if servo.hardwareErrorBits != 0 { errorByte |= 0x80 }
        packet[0] = 0xFF
        packet[1] = 0xFF
        packet[2] = 0xFD
        packet[3] = 0x00
        packet[4] = servo.busID
        var out = 7
        // INST, ERR and the parameters, stuffed.
        out = appendStuffed(0x55, at: out)
        out = appendStuffed(errorByte, at: out)
        for offset in 0..<count { out = appendStuffed(payload[offset], at: out) }
        let length = out - 7 + 2
        packet[5] = UInt8(truncatingIfNeeded: length)
        packet[6] = UInt8(truncatingIfNeeded: length >> 8)
        let crc = Self.dynamixelCRC(packet, count: out)
        packet[out] = UInt8(truncatingIfNeeded: crc)
        packet[out + 1] = UInt8(truncatingIfNeeded: crc >> 8)
        enqueue(count: out + 2, servoIndex: index)
    }

    @inline(__always)
    func appendStuffed(_ byte: UInt8, at out: Int) -> Int {
        packet[out] = byte
        if byte == 0xFD && out >= 9 && packet[out - 1] == 0xFF && packet[out - 2] == 0xFF {
            packet[out + 1] = 0xFD
            return out + 2
        }
        return out + 1
    }

    func handlePing(id: UInt8) {
        if id == 0xFE {
            for index in idOrder where hears(index) { sendPing(index: index) }
        } else if let index = hearingServo(id: id) {
            sendPing(index: index)
        }
    }

    func sendPing(index: Int) {
        payload[0] = UInt8(truncatingIfNeeded: model.modelNumber)
        payload[1] = UInt8(truncatingIfNeeded: model.modelNumber >> 8)
        payload[2] = model.firmwareVersion
        sendStatus(index: index, error: .none, count: 3)
    }

    func handleRead(id: UInt8, paramCount: Int) {
        guard let index = hearingServo(id: id) else { return }
        let servo = servos[index]
        guard servo.statusReturnLevel >= 1 else { return }
        guard paramCount == 4 else {
            sendStatus(index: index, error: .dataLength, count: 0)
            return
        }
        let address = Int(params[0]) | Int(params[1]) << 8
        let length = Int(params[2]) | Int(params[3]) << 8
        let outcome = length > Self.bufferCapacity - 16 ? .dataLength : servo.hostRead(address: address, length: length, into: payload)
        if outcome == .ok {
            sendStatus(index: index, error: .none, count: length)
        } else {
            sendStatus(index: index, error: DynamixelError(outcome), count: 0)
        }
    }

    func handleWrite(id: UInt8, paramCount: Int, registered: Bool) {
        guard paramCount >= 3 else {
            if id != 0xFE, let index = hearingServo(id: id), servos[index].statusReturnLevel >= 2 {
                sendStatus(index: index, error: .dataLength, count: 0)
            }
            return
        }
        let address = Int(params[0]) | Int(params[1]) << 8
        for index in servos.indices where (id == 0xFE || servos[index].busID == id) && hears(index) {
            let servo = servos[index]
            var outcome = AccessOutcome.ok
            if registered {
                if address + paramCount - 2 > servo.tableSize {
                    outcome = .dataLength
                } else {
                    (servo.registered).update(from: params + 2, count: paramCount - 2)
                    servo.registeredAddress = address
                    servo.registeredLength = paramCount - 2
                    servo.setValue(servo.map.registeredInstruction, 1)
                }
            } else {
                outcome = servo.hostWrite(address: address, data: params + 2, length: paramCount - 2)
            }
            if id != 0xFE && servo.statusReturnLevel >= 2 {
                sendStatus(index: index, error: DynamixelError(outcome), count: 0)
            }
        }
    }

    func handleAction(id: UInt8) {
        for index in servos.indices where (id == 0xFE || servos[index].busID == id) && hears(index) {
            let servo = servos[index]
            var outcome = AccessOutcome.ok
            if servo.registeredAddress >= 0 {
                outcome = servo.hostWrite(
                    address: servo.registeredAddress, data: servo.registered, length: servo.registeredLength)
                servo.registeredAddress = -1
                servo.setValue(servo.map.registeredInstruction, 0)
            } else {
                outcome = .resultFail
            }
            if id != 0xFE && servo.statusReturnLevel >= 2 {
                sendStatus(index: index, error: DynamixelError(outcome), count: 0)
            }
        }
    }

    /// FACTORY_RESET, REBOOT and CLEAR: the reply goes out first, then the servo resets.
    func handleReset(id: UInt8, instruction: UInt8, paramCount: Int) {
        guard id != 0xFE, let index = hearingServo(id: id) else { return }
        let servo = servos[index]
        if instruction == 0x06 {
            let mode = paramCount >= 1 ? params[0] : 0xFF
            guard mode == 0xFF || mode == 0x01 || mode == 0x02 else {
                if servo.statusReturnLevel >= 2 { sendStatus(index: index, error: .dataRange, count: 0) }
                return
            }
            if servo.statusReturnLevel >= 2 { sendStatus(index: index, error: .none, count: 0) }
            servo.factoryReset(mode: mode)
        } else if instruction == 0x08 {
            if servo.statusReturnLevel >= 2 { sendStatus(index: index, error: .none, count: 0) }
            servo.reboot()
        } else {
            // CLEAR (multi-turn reset): accepted; the simulator keeps its absolute position.
            if servo.statusReturnLevel >= 2 { sendStatus(index: index, error: .none, count: 0) }
        }
    }

    func handleSyncRead(paramCount: Int, fast: Bool) {
        guard paramCount >= 5 else { return }
        let address = Int(params[0]) | Int(params[1]) << 8
        let length = Int(params[2]) | Int(params[3]) << 8
        guard length <= 1024 else { return }
        if fast {
            fastSyncRead(address: address, length: length, ids: 4..<paramCount)
            return
        }
        for slot in 4..<paramCount {
            guard let index = hearingServo(id: params[slot]) else { continue }
            let servo = servos[index]
            guard servo.statusReturnLevel >= 1 else { continue }
            let outcome = servo.hostRead(address: address, length: length, into: payload)
            sendStatus(index: index, error: DynamixelError(outcome), count: outcome == .ok ? length : 0)
        }
    }

    /// One status packet (ID 0xFE) that the listed servos fill in turn: ERR ID DATA CRC per servo, each
    /// CRC running over the packet so far. A missing servo leaves the packet cut short, as on the wire.
    /// Not byte-stuffed.
    func fastSyncRead(address: Int, length: Int, ids: Range<Int>) {
        let count = ids.count
        let total = 8 + count * (4 + length)
        guard total <= 2 * Self.bufferCapacity else { return }
        packet[0] = 0xFF
        packet[1] = 0xFF
        packet[2] = 0xFD
        packet[3] = 0x00
        packet[4] = 0xFE
        packet[5] = UInt8(truncatingIfNeeded: total - 7)
        packet[6] = UInt8(truncatingIfNeeded: (total - 7) >> 8)
        packet[7] = 0x55
        var out = 8
        var firstIndex = -1
        for slot in ids {
            guard let index = hearingServo(id: params[slot]), servos[index].statusReturnLevel >= 1 else { break }
            if firstIndex < 0 { firstIndex = index }
            let servo = servos[index]
            let outcome = servo.hostRead(address: address, length: length, into: packet + out + 2)
            var errorByte = DynamixelError(outcome).rawValue
            if servo.hardwareErrorBits != 0 { errorByte |= 0x80 }
            packet[out] = errorByte
            packet[out + 1] = servo.busID
            out += 2 + length
            let crc = Self.dynamixelCRC(packet, count: out)
            packet[out] = UInt8(truncatingIfNeeded: crc)
            packet[out + 1] = UInt8(truncatingIfNeeded: crc >> 8)
            out += 2
        }
        if firstIndex >= 0 { enqueue(count: out, servoIndex: firstIndex) }
    }

    func handleSyncWrite(paramCount: Int) {
        guard paramCount >= 5 else { return }
        let address = Int(params[0]) | Int(params[1]) << 8
        let length = Int(params[2]) | Int(params[3]) << 8
        guard length > 0 else { return }
        var slot = 4
        while slot + 1 + length <= paramCount {
            if let index = hearingServo(id: params[slot]) {
                _ = servos[index].hostWrite(address: address, data: params + slot + 1, length: length)
            }
            slot += 1 + length
        }
    }

    func handleBulkRead(paramCount: Int) {
        var slot = 0
        while slot + 5 <= paramCount {
            let id = params[slot]
            let address = Int(params[slot + 1]) | Int(params[slot + 2]) << 8
            let length = Int(params[slot + 3]) | Int(params[slot + 4]) << 8
            slot += 5
            guard let index = hearingServo(id: id), servos[index].statusReturnLevel >= 1, length <= 1024 else {
                continue
            }
            let outcome = servos[index].hostRead(address: address, length: length, into: payload)
            sendStatus(index: index, error: DynamixelError(outcome), count: outcome == .ok ? length : 0)
        }
    }

    func handleBulkWrite(paramCount: Int) {
        var slot = 0
        while slot + 5 <= paramCount {
            let id = params[slot]
            let address = Int(params[slot + 1]) | Int(params[slot + 2]) << 8
            let length = Int(params[slot + 3]) | Int(params[slot + 4]) << 8
            guard slot + 5 + length <= paramCount else { return }
            if let index = hearingServo(id: id), length > 0 {
                _ = servos[index].hostWrite(address: address, data: params + slot + 5, length: length)
            }
            slot += 5 + length
        }
    }
}
