import CSerialPort
import CSinewSystem

#if canImport(Glibc)
    import Glibc
#endif

/// A serial port as enumerated by libserialport, with its USB metadata when it is a USB adapter.
public struct SerialPortInfo: Sendable, Equatable {
    /// Device path, e.g. `/dev/ttyUSB0`.
    public var path: String
    public var description: String
    public var isUSB: Bool
    public var usbVendorID: UInt16?
    public var usbProductID: UInt16?
    public var usbSerialNumber: String?
    public var usbManufacturer: String?
    public var usbProduct: String?
}

/// Reads a C string that libserialport owns (no free).
private func borrowedString(_ p: UnsafeMutablePointer<CChar>?) -> String? {
    guard let p else { return nil }
    let length = strlen(p)
    return String(decoding: UnsafeRawBufferPointer(start: p, count: length), as: UTF8.self)
}

private func lastSerialError() -> String {
    guard let m = sp_last_error_message() else { return "" }
    defer { sp_free_error_message(m) }
    return borrowedString(m) ?? ""
}

private func check(_ r: sp_return, _ call: String) throws(TransportError) {
    if r.rawValue < 0 { throw .serialPort(call: call, code: r.rawValue, message: lastSerialError()) }
}

/// A real serial port: opened and configured (8N1, no flow control) through libserialport, then read
/// and written through its file descriptor with `ppoll` deadlines (libserialport's own waits have
/// millisecond resolution).
public final class SerialPortTransport: ByteTransport, @unchecked Sendable {
    public let path: String
    public private(set) var baudRate: Int
    public let fileDescriptor: Int32
    /// Set when the adapter will add latency worth fixing (an FTDI latency timer above 1 ms), with the fix.
    public private(set) var latencyWarning: String?
    private let port: OpaquePointer

    /// Every serial port the system knows, with USB metadata.
    public static func list() throws(TransportError) -> [SerialPortInfo] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        try check(sp_list_ports(&list), "sp_list_ports")
        defer { sp_free_port_list(list) }
        var result: [SerialPortInfo] = []
        var i = 0
        while let port = list?[i] {
            i += 1
            let isUSB = sp_get_port_transport(port) == SP_TRANSPORT_USB
            var vid: Int32 = 0
            var pid: Int32 = 0
            let hasIDs = isUSB && sp_get_port_usb_vid_pid(port, &vid, &pid) == SP_OK
            result.append(
                SerialPortInfo(
                    path: borrowedString(sp_get_port_name(port)) ?? "",
                    description: borrowedString(sp_get_port_description(port)) ?? "",
                    isUSB: isUSB,
                    usbVendorID: hasIDs ? UInt16(truncatingIfNeeded: vid) : nil,
                    usbProductID: hasIDs ? UInt16(truncatingIfNeeded: pid) : nil,
                    usbSerialNumber: isUSB ? borrowedString(sp_get_port_usb_serial(port)) : nil,
                    usbManufacturer: isUSB ? borrowedString(sp_get_port_usb_manufacturer(port)) : nil,
                    usbProduct: isUSB ? borrowedString(sp_get_port_usb_product(port)) : nil))
        }
        return result.sorted { $0.path < $1.path }
    }

    /// Opens the USB adapter with this serial number.
    public convenience init(usbSerialNumber: String, baudRate: Int = 1_000_000) throws(TransportError) {
        guard let info = try Self.list().first(where: { $0.usbSerialNumber == usbSerialNumber }) else {
            throw .notFound("USB serial number \(usbSerialNumber)")
        }
        try self.init(path: info.path, baudRate: baudRate)
    }

    /// Opens `path` (e.g. `/dev/ttyUSB0`, or a `/dev/serial/by-id/…` link) at `baudRate` bit/s, 8N1,
    /// asks the driver for low latency, and checks an FTDI latency timer (see ``latencyWarning``).
    /// Pseudo-terminals are refused by libserialport: use ``PseudoTerminalTransport`` for those.
    public init(path: String, baudRate: Int = 1_000_000) throws(TransportError) {
        var p: OpaquePointer?
        let found = sp_get_port_by_name(path, &p)
        guard found == SP_OK, let port = p else {
            throw found == SP_ERR_ARG
                ? .notFound(path)
                : .serialPort(call: "sp_get_port_by_name", code: found.rawValue, message: lastSerialError())
        }
        do {
            try check(sp_open(port, SP_MODE_READ_WRITE), "sp_open")
        } catch {
            sp_free_port(port)
            throw error
        }
        self.port = port
        self.path = path
        self.baudRate = baudRate
        var fd: Int32 = -1
        do throws(TransportError) {
            try check(sp_set_bits(port, 8), "sp_set_bits")
            try check(sp_set_parity(port, SP_PARITY_NONE), "sp_set_parity")
            try check(sp_set_stopbits(port, 1), "sp_set_stopbits")
            try check(sp_set_flowcontrol(port, SP_FLOWCONTROL_NONE), "sp_set_flowcontrol")
            if sp_set_baudrate(port, Int32(baudRate)) != SP_OK { throw .unsupportedBaudRate(baudRate) }
            try check(sp_get_port_handle(port, &fd), "sp_get_port_handle")
        } catch {
            sp_close(port)
            sp_free_port(port)
            throw error
        }
        do throws(TransportError) {
            try claimExclusively(fd: fd, path: path)
        } catch {
            sp_close(port)
            sp_free_port(port)
            throw error
        }
        fileDescriptor = fd
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        // Best effort: USB-serial drivers that support it shorten their receive latency.
        _ = sinew_serial_set_low_latency(fd)
        latencyWarning = Self.ftdiLatencyWarning(path: path)
    }

    deinit {
        releaseExclusive(fd: fileDescriptor)
        sp_close(port)
        sp_free_port(port)
    }

    /// The FTDI latency timer of the `ttyUSBn` behind `path`, in ms, when the driver exposes one
    /// (`sysfsRoot` is for tests).
    public static func ftdiLatencyTimerMilliseconds(path: String, sysfsRoot: String = "/sys") -> Int? {
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard realpath(path, &resolved) != nil else { return nil }
        let real = String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let name = real.split(separator: "/").last, name.hasPrefix("ttyUSB") else { return nil }
        let file = "\(sysfsRoot)/bus/usb-serial/devices/\(name)/latency_timer"
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[0..<n], as: UTF8.self).filter(\.isNumber))
    }

    /// A warning with the fix when the FTDI latency timer behind `path` is above 1 ms; nil otherwise.
    public static func ftdiLatencyWarning(path: String, sysfsRoot: String = "/sys") -> String? {
        guard let ms = ftdiLatencyTimerMilliseconds(path: path, sysfsRoot: sysfsRoot), ms > 1 else { return nil }
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        _ = realpath(path, &resolved)
        let name =
            String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: "/").last.map(String.init) ?? "ttyUSB0"
        return """
            \(path): FTDI latency timer is \(ms) ms, so replies arrive up to \(ms) ms late (a loop stuck near \
            \(1000 / max(ms, 1)) Hz). Fix now: echo 1 | sudo tee /sys/bus/usb-serial/devices/\(name)/latency_timer \
            — permanently: a udev rule such as ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", \
            ATTR{latency_timer}="1" in /etc/udev/rules.d/99-ftdi-latency.rules
            """
    }

    public func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicInstant) throws(TransportError) {
        try DescriptorIO.write(fd: fileDescriptor, bytes, deadline: deadline)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicInstant) throws(TransportError)
        -> Int
    {
        try DescriptorIO.read(fd: fileDescriptor, into: buffer, deadline: deadline)
    }

    public func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        try DescriptorIO.readAvailable(fd: fileDescriptor, into: buffer)
    }

    public var readinessDescriptor: Int32 { fileDescriptor }

    /// A port that polls readable and reads nothing has hung up (an adapter unplugged; see `DescriptorIO.read`).
    public func readinessWithoutData() throws(TransportError) { throw .disconnected(errno: 0) }

    /// tcflush on the descriptor, as libserialport's `sp_flush` does, but allocation-free and typed: an
    /// unplugged adapter fails with ``TransportError/disconnected(errno:)``.
    public func flushInput() throws(TransportError) {
        let r = sinew_termios_flush_input(fileDescriptor)
        if r < 0 { throw DescriptorIO.failure("tcflush", -r) }
    }

    /// Any rate the adapter accepts, up to 4.5 Mbit/s for Dynamixel's fastest setting.
    public func setBaudRate(_ bitsPerSecond: Int) throws(TransportError) {
        if bitsPerSecond <= 0 || bitsPerSecond > 4_500_000 || sp_set_baudrate(port, Int32(bitsPerSecond)) != SP_OK {
            throw .unsupportedBaudRate(bitsPerSecond)
        }
        baudRate = bitsPerSecond
    }
}
