import CSinewDDS
import Foundation

/// An endpoint's quality of service: ROS 2's profiles as values.
public struct DDSQoS: Sendable, Equatable {
    public var reliable: Bool
    public var transientLocal: Bool
    public var depth: Int32
    public init(reliable: Bool, transientLocal: Bool = false, depth: Int32) {
        self.reliable = reliable
        self.transientLocal = transientLocal
        self.depth = depth
    }
    /// ROS 2's default: reliable, volatile, keep last 10.
    public static let rosDefault = DDSQoS(reliable: true, depth: 10)
    /// ROS 2's `sensor_data`: best effort, volatile, keep last 5.
    public static let sensorData = DDSQoS(reliable: false, depth: 5)
    /// What robot_state_publisher gives `robot_description`: reliable, transient local, keep last 1.
    public static let latched = DDSQoS(reliable: true, transientLocal: true, depth: 1)

    var c: sinew_dds_qos {
        sinew_dds_qos(reliable: reliable ? 1 : 0, transient_local: transientLocal ? 1 : 0, depth: max(1, depth))
    }
}

/// One DDS participant (Cyclone DDS) and the entities made on it; deleting it deletes them all.
public final class DDSParticipant: @unchecked Sendable {
    // @unchecked: Cyclone's entities are thread-safe; the handle never changes.
    public let handle: dds_entity_t
    public let domainID: Int

    /// - Parameter configuration: Cyclone's XML configuration (nil: its defaults and CYCLONEDDS_URI).
    public init(domainID: Int, configuration: String?) throws(ROSError) {
        self.domainID = domainID
        let h = sinew_dds_participant(UInt32(domainID), configuration)
        guard h > 0 else {
            throw ROSError(
                "cannot join DDS domain \(domainID): \(DDSParticipant.text(h))"
                    + (configuration == nil ? "" : " (with the configuration \(configuration!))"))
        }
        handle = h
    }

    deinit { sinew_dds_delete(handle) }

    static func text(_ code: Int32) -> String { String(cString: sinew_dds_error_text(code)) }

    /// A writer of an idlc-generated type.
    public func typedWriter(topic: String, type: sinew_ros_type, qos: DDSQoS) throws(ROSError) -> dds_entity_t {
        let w = sinew_dds_typed_writer(handle, topic, sinew_ros_descriptor(type), qos.c)
        guard w > 0 else { throw ROSError("cannot publish \(topic): \(Self.text(w))") }
        return w
    }

    /// A reader of raw samples (their bytes) of `typeName` on `topic`.
    public func rawReader(topic: String, typeName: String, qos: DDSQoS) throws(ROSError) -> dds_entity_t {
        let r = sinew_dds_raw_reader(handle, topic, typeName, qos.c)
        guard r > 0 else { throw ROSError("cannot subscribe to \(topic): \(Self.text(r))") }
        return r
    }

    /// A writer of raw samples (tests, tools, the raw writer of the fault tests).
    public func rawWriter(topic: String, typeName: String, qos: DDSQoS) throws(ROSError) -> dds_entity_t {
        let w = sinew_dds_raw_writer(handle, topic, typeName, qos.c, 0)
        guard w > 0 else { throw ROSError("cannot publish \(topic): \(Self.text(w))") }
        return w
    }

    /// Writes serialised bytes (encapsulation header first) through a raw writer.
    @discardableResult
    public func writeRaw(_ writer: dds_entity_t, _ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBufferPointer { sinew_dds_write_raw(writer, $0.baseAddress, UInt32($0.count)) }
    }
}

/// Takes raw samples from a reader into one reusable buffer.
public final class DDSRawTaker {
    public let reader: dds_entity_t
    private var buffer: [UInt8]

    public init(reader: dds_entity_t, capacity: Int = ROSMessageLimits.sampleBytes) {
        self.reader = reader
        buffer = [UInt8](repeating: 0, count: capacity)
    }

    /// One sample: its bytes (valid until the next call) and the writer's timestamp, or nil when none waits.
    /// `truncated` is true when the sample was larger than the buffer (only its start is given).
    public func take(
        _ body: (_ bytes: UnsafeRawBufferPointer, _ sourceTimestampNs: Int64, _ truncated: Bool) -> Void
    ) -> Bool {
        var info = sinew_dds_sample_info()
        let capacity = buffer.count
        let n = buffer.withUnsafeMutableBufferPointer { b in
            sinew_dds_take_raw(reader, b.baseAddress, UInt32(capacity), &info)
        }
        guard n > 0 else { return false }
        guard info.valid_data != 0 else { return true }
        let size = Int(info.size)
        buffer.withUnsafeBytes { raw in
            body(
                UnsafeRawBufferPointer(rebasing: raw[0..<min(size, capacity)]), info.source_timestamp_ns,
                size > capacity)
        }
        return true
    }
}
