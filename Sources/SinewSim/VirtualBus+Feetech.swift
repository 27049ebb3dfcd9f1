import SinewBus
import SinewDrivers

/// Feetech SCS/STS protocol, servo side, over the SinewBus codec.
extension VirtualBus {
    func drainFeetech(atNs: UInt64) {
        while true {
            switch feetechDecoder.next() {
            case .needMoreData:
                return
            case .corrupt:
                // A Feetech servo stays silent on a bad checksum.
                advance(toNs: atNs)
                guard beginRequest(length: Feetech.overhead, atNs: atNs) else { continue }
                statistics.badChecksums += 1
                endRequest()
            case .frame(let frame):
                advance(toNs: atNs)
                guard beginRequest(length: Feetech.overhead + frame.parameters.count, atNs: atNs) else { continue }
                handle(FeetechRequest(frame), id: frame.id)
                endRequest()
            }
        }
    }

    func handle(_ request: FeetechRequest, id: UInt8) {
        let broadcast = id == ServoID.broadcast
        switch request {
        case .ping:
            if broadcast {
                for index in idOrder where hears(index) { sendFeetechStatus(index: index, count: 0) }
            } else if let index = hearingServo(id: id) {
                sendFeetechStatus(index: index, count: 0)
            }
        case .read(let address, let length):
            // READ is answered whatever the Status Return Level.
            guard !broadcast, let index = hearingServo(id: id),
                servos[index].hostRead(address: Int(address), length: Int(length), into: payload) == .ok
            else { return }
            sendFeetechStatus(index: index, count: Int(length))
        case .write(let address, let data):
            forEachAddressed(id) { index in
                _ = servos[index].hostWrite(address: Int(address), data: data)
                if !broadcast && servos[index].statusReturnLevel >= 1 { sendFeetechStatus(index: index, count: 0) }
            }
        case .regWrite(let address, let data):
            forEachAddressed(id) { index in
                _ = servos[index].register(address: Int(address), data: data)
                if !broadcast && servos[index].statusReturnLevel >= 1 { sendFeetechStatus(index: index, count: 0) }
            }
        case .action:
            forEachAddressed(id) { index in
                _ = servos[index].action()
                if !broadcast && servos[index].statusReturnLevel >= 1 { sendFeetechStatus(index: index, count: 0) }
            }
        case .syncRead(let address, let length, let ids):
            for slot in 0..<ids.count {
                guard let index = hearingServo(id: ids[slot]),
                    servos[index].hostRead(address: Int(address), length: Int(length), into: payload) == .ok
                else { continue }
                sendFeetechStatus(index: index, count: Int(length))
            }
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
        case .malformed:
            return
        }
    }

    /// `FF FF ID LEN ERR params CHK` with `count` parameter bytes from `payload`.
    func sendFeetechStatus(index: Int, count: Int) {
        let servo = servos[index]
        let length: Int
        do {
            length = try Feetech.encodeStatus(
                id: servo.busID, error: servo.hardwareErrorBits,
                parameters: UnsafeRawBufferPointer(start: payload, count: count),
                into: UnsafeMutableRawBufferPointer(start: packet, count: 2 * Self.bufferCapacity))
        } catch {
            return
        }
        enqueue(count: length, servoIndex: index)
    }
}
