import SinewDrivers

/// Feetech SCS/STS protocol, servo side.
extension VirtualBus {
    func parseFeetech(atNs: UInt64) {
        while requestCount >= 2 {
            var start = 0
            while start + 1 < requestCount && !(request[start] == 0xFF && request[start + 1] == 0xFF) { start += 1 }
            if start + 1 >= requestCount {
                let keep = request[requestCount - 1] == 0xFF ? 1 : 0
                statistics.discardedBytes += requestCount - keep
                consume(requestCount - keep)
                return
            }
            if start > 0 {
                statistics.discardedBytes += start
                consume(start)
            }
            if requestCount < 4 { return }
            // FF FF FF …: a third FF is not an ID; slide by one.
            if request[2] == 0xFF {
                statistics.discardedBytes += 1
                consume(1)
                continue
            }
            let length = Int(request[3])
            if length < 2 {
                statistics.discardedBytes += 1
                consume(1)
                continue
            }
            let total = 4 + length
            if requestCount < total { return }
            handleFeetechPacket(total: total, atNs: atNs)
            consume(total)
        }
    }

    @inline(__always)
    static func feetechChecksum(_ bytes: UnsafePointer<UInt8>, from start: Int, to end: Int) -> UInt8 {
        var sum = 0
        for index in start..<end { sum &+= Int(bytes[index]) }
        return ~UInt8(truncatingIfNeeded: sum)
    }

    func handleFeetechPacket(total: Int, atNs: UInt64) {
        advance(toNs: atNs)
        _ = beginRequest(length: total, atNs: atNs)
        defer { endRequest() }
        guard Self.feetechChecksum(request, from: 2, to: total - 1) == request[total - 1] else {
            statistics.badChecksums += 1
            return
        }
        let id = request[2]
        let instruction = request[4]
        let paramCount = total - 6
        (params).update(from: request + 5, count: paramCount)
        let broadcast = id == 0xFE
        switch instruction {
        case 0x01:
            if broadcast {
                for index in idOrder where hears(index) { sendFeetechStatus(index: index, count: 0) }
            } else if let index = hearingServo(id: id) {
                sendFeetechStatus(index: index, count: 0)
            }
        case 0x02:
            guard !broadcast, paramCount == 2, let index = hearingServo(id: id) else { return }
            let length = Int(params[1])
            if servos[index].hostRead(address: Int(params[0]), length: length, into: payload) == .ok {
                sendFeetechStatus(index: index, count: length)
            }
        case 0x03, 0x04:
            guard paramCount >= 2 else { return }
            for index in servos.indices where (broadcast || servos[index].busID == id) && hears(index) {
                let servo = servos[index]
                let address = Int(params[0])
                if instruction == 0x03 {
                    _ = servo.hostWrite(address: address, data: params + 1, length: paramCount - 1)
                } else if address + paramCount - 1 <= servo.tableSize {
                    servo.registered.update(from: params + 1, count: paramCount - 1)
                    servo.registeredAddress = address
                    servo.registeredLength = paramCount - 1
                    servo.setValue(servo.map.registeredInstruction, 1)
                }
                if !broadcast && servo.statusReturnLevel >= 1 { sendFeetechStatus(index: index, count: 0) }
            }
        case 0x05:
            for index in servos.indices where (broadcast || servos[index].busID == id) && hears(index) {
                let servo = servos[index]
                if servo.registeredAddress >= 0 {
                    _ = servo.hostWrite(
                        address: servo.registeredAddress, data: servo.registered, length: servo.registeredLength)
                    servo.registeredAddress = -1
                    servo.setValue(servo.map.registeredInstruction, 0)
                }
                if !broadcast && servo.statusReturnLevel >= 1 { sendFeetechStatus(index: index, count: 0) }
            }
        case 0x82:
            guard paramCount >= 3 else { return }
            let address = Int(params[0])
            let length = Int(params[1])
            for slot in 2..<paramCount {
                guard let index = hearingServo(id: params[slot]) else { continue }
                if servos[index].hostRead(address: address, length: length, into: payload) == .ok {
                    sendFeetechStatus(index: index, count: length)
                }
            }
        case 0x83:
            guard paramCount >= 3 else { return }
            let address = Int(params[0])
            let length = Int(params[1])
            guard length > 0 else { return }
            var slot = 2
            while slot + 1 + length <= paramCount {
                if let index = hearingServo(id: params[slot]) {
                    _ = servos[index].hostWrite(address: address, data: params + slot + 1, length: length)
                }
                slot += 1 + length
            }
        default:
            return
        }
    }

    /// `FF FF ID LEN ERR params CHK` with `count` parameter bytes from `payload`.
    func sendFeetechStatus(index: Int, count: Int) {
        let servo = servos[index]
        packet[0] = 0xFF
        packet[1] = 0xFF
        packet[2] = servo.busID
        packet[3] = UInt8(truncatingIfNeeded: count + 2)
        packet[4] = servo.hardwareErrorBits
        for offset in 0..<count { packet[5 + offset] = payload[offset] }
        packet[5 + count] = Self.feetechChecksum(packet, from: 2, to: 5 + count)
        enqueue(count: 6 + count, servoIndex: index)
    }
}
