import CSinewTLS
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Why talking to a policy server failed.
public struct RemotePolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The URL, the address or a setting is not one we use.
        case refused
        /// No connection: DNS, connect, a reset, a timeout.
        case connection
        /// The server broke the websocket protocol, or closed.
        case protocolViolation
        /// The server answered the handshake with another status (401: a wrong token).
        case handshake(status: Int)
        /// A frame of the policy protocol we cannot take (msgpack, numpy, shape, values).
        case badMessage
        /// The server sent its error (a text frame).
        case serverError
        /// No answer in time.
        case timeout
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// A websocket client (RFC 6455) over TCP, plain (`ws://`) or in TLS (`wss://`, OpenSSL through ``CSinewTLS``,
/// the certificate checked against the system's store or a CA file and against the host's name): the opening
/// handshake with extra headers (a bearer token), masked frames out, unmasked frames in, fragmentation, ping/pong
/// and close. Blocking calls with deadlines, for a thread of its own; frame sizes are bounded both ways.
public final class WebSocketClient: @unchecked Sendable {
    // @unchecked: one thread uses it at a time; `shutDown()` may come from another to wake a blocked read.
    public enum Message: Sendable, Equatable {
        case binary([UInt8])
        case text(String)
    }

    /// A `ws://HOST:PORT/PATH` or `wss://HOST:PORT/PATH` address.
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var path: String
        /// TLS (`wss://`).
        public var secure: Bool

        /// Parses `ws://host:port/path` (port 80 by default) or `wss://…` (443).
        public init(url: String) throws(RemotePolicyError) {
            let scheme: String
            if url.hasPrefix("ws://") {
                scheme = "ws://"
                secure = false
            } else if url.hasPrefix("wss://") {
                scheme = "wss://"
                secure = true
            } else {
                throw RemotePolicyError(
                    .refused, "\(url): a policy server's address is ws://HOST:PORT or wss://HOST:PORT")
            }
            let rest = url.dropFirst(scheme.count)
            let hostPort = rest.prefix { $0 != "/" }
            path = rest.dropFirst(hostPort.count).isEmpty ? "/" : String(rest.dropFirst(hostPort.count))
            var hostText = String(hostPort)
            var portNumber = secure ? 443 : 80
            if hostText.hasPrefix("[") {
                // [IPv6]:port
                guard let close = hostText.firstIndex(of: "]") else {
                    throw RemotePolicyError(.refused, "\(url): an IPv6 address is written [ADDRESS]:PORT")
                }
                let after = hostText[hostText.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                        throw RemotePolicyError(.refused, "\(url): the port must be 1–65535")
                    }
                    portNumber = p
                }
                hostText = String(hostText[hostText.index(after: hostText.startIndex)..<close])
            } else if let colon = hostText.lastIndex(of: ":") {
                guard let p = Int(hostText[hostText.index(after: colon)...]), (1...65535).contains(p) else {
                    throw RemotePolicyError(.refused, "\(url): the port must be 1–65535")
                }
                portNumber = p
                hostText = String(hostText[..<colon])
            }
            guard !hostText.isEmpty else { throw RemotePolicyError(.refused, "\(url): no host") }
            host = hostText
            port = portNumber
        }

        /// Whether the host is this machine (a plain connection stays on it).
        public var isLoopback: Bool {
            host == "localhost" || host == "::1" || host.hasPrefix("127.")
        }
    }

    public let endpoint: Endpoint
    /// The largest message taken from the server (bytes, all fragments together).
    public let maximumMessageBytes: Int
    private var descriptor: Int32 = -1
    private var tls: OpaquePointer?
    private var readBuffer: [UInt8] = []
    private var generator = SystemRandomNumberGenerator()
    private static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Connects (and for `wss://` negotiates TLS, trusting `caFile` (PEM) instead of the system's certificates
    /// when given) and performs the opening handshake. `headers` go with the upgrade request (e.g.
    /// `Authorization`).
    public init(
        endpoint: Endpoint, headers: [(String, String)] = [], timeoutS: Double = 5,
        maximumMessageBytes: Int = 64 << 20, caFile: String? = nil
    ) throws(RemotePolicyError) {
        self.endpoint = endpoint
        self.maximumMessageBytes = maximumMessageBytes
        descriptor = try Self.connect(endpoint, timeoutS: timeoutS)
        do throws(RemotePolicyError) {
            if endpoint.secure {
                var error = [CChar](repeating: 0, count: 512)
                guard
                    let session = sinew_tls_connect(
                        descriptor, endpoint.host, caFile, Int32(timeoutS * 1000), &error, error.count)
                else {
                    throw RemotePolicyError(
                        .connection, "TLS with \(endpoint.host):\(endpoint.port): \(Self.text(error))")
                }
                tls = session
            }
            try handshake(headers: headers, timeoutS: timeoutS)
        } catch {
            if let tls { sinew_tls_free(tls) }
            tls = nil
            Glibc.close(descriptor)
            descriptor = -1
            throw error
        }
    }

    deinit {
        if let tls { sinew_tls_free(tls) }
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Wakes a thread blocked in ``receive(timeoutS:)`` and makes every later call fail (any thread).
    public func shutDown() {
        if descriptor >= 0 { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    private static func connect(_ endpoint: Endpoint, timeoutS: Double) throws(RemotePolicyError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard status == 0, let first = list else {
            throw RemotePolicyError(
                .connection, "\(endpoint.host): cannot resolve the address (\(String(cString: gai_strerror(status))))")
        }
        defer { freeaddrinfo(list) }
        var lastError = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
                lastError = errno
                Glibc.close(fd)
                continue
            }
            var waiter = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&waiter, 1, Int32(max(1, timeoutS * 1000)))
            var code: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &size)
            guard ready == 1, code == 0 else {
                lastError = ready == 0 ? ETIMEDOUT : code
                Glibc.close(fd)
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return fd
        }
        throw RemotePolicyError(
            .connection,
            "cannot connect to \(endpoint.host):\(endpoint.port): \(String(cString: strerror(lastError)))")
    }

    private func handshake(headers: [(String, String)], timeoutS: Double) throws(RemotePolicyError) {
        var nonce = [UInt8](repeating: 0, count: 16)
        for i in nonce.indices { nonce[i] = UInt8.random(in: 0...255, using: &generator) }
        let key = Base64.encode(nonce)
        let hostHeader = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        var request =
            "GET \(endpoint.path) HTTP/1.1\r\nHost: \(hostHeader):\(endpoint.port)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try sendAll(Array(request.utf8), timeoutS: timeoutS)
        // The response head, at most 16 KiB.
        let deadline = Self.now() + timeoutS
        var head: [UInt8] = []
        while true {
            if let end = Self.headEnd(head) {
                readBuffer = Array(head[end...])
                head = Array(head[..<end])
                break
            }
            guard head.count < 16_384 else {
                throw RemotePolicyError(.protocolViolation, "the server's handshake answer is over 16 KiB")
            }
            head += try readSome(deadline: deadline)
        }
        guard let text = String(validating: head, as: UTF8.self) else {
            throw RemotePolicyError(.protocolViolation, "the server's handshake answer is not text")
        }
        let lines = text.components(separatedBy: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        let status = statusParts.count >= 2 ? Int(statusParts[1]) ?? 0 : 0
        guard status == 101 else {
            let why = status == 401 || status == 403 ? " (the server refused the token)" : ""
            throw RemotePolicyError(
                .handshake(status: status),
                "the server at \(endpoint.host):\(endpoint.port) answered \(lines.first ?? "nothing")\(why)")
        }
        var accept: String?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == "sec-websocket-accept" {
                accept = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        let expected = Self.acceptKey(forKey: key)
        guard accept == expected else {
            throw RemotePolicyError(.protocolViolation, "the server's Sec-WebSocket-Accept does not match our key")
        }
    }

    /// A C string buffer as text.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The Sec-WebSocket-Accept a server must answer to a Sec-WebSocket-Key (RFC 6455 §4.2.2): base64 of the
    /// SHA-1 of the key and the protocol's GUID.
    public static func acceptKey(forKey key: String) -> String {
        Base64.encode(SHA1.digest(Array((key + guid).utf8)))
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 3..<bytes.count
        where bytes[i - 3] == 13 && bytes[i - 2] == 10 && bytes[i - 1] == 13 && bytes[i] == 10 {
            return i + 1
        }
        return nil
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    private func sendAll(_ bytes: [UInt8], timeoutS: Double) throws(RemotePolicyError) {
        if let tls {
            var error = [CChar](repeating: 0, count: 512)
            let r = bytes.withUnsafeBytes {
                sinew_tls_write(tls, $0.baseAddress, $0.count, Int32(max(1, timeoutS * 1000)), &error, error.count)
            }
            if r == -2 { throw RemotePolicyError(.timeout, "sending to the server timed out") }
            if r != 0 { throw RemotePolicyError(.connection, "sending to the server failed: \(Self.text(error))") }
            return
        }
        let deadline = Self.now() + timeoutS
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                let left = deadline - Self.now()
                guard left > 0 else { throw RemotePolicyError(.timeout, "sending to the server timed out") }
                var waiter = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&waiter, 1, Int32(max(1, left * 1000)))
                continue
            }
            if n < 0 && errno == EINTR { continue }
            throw RemotePolicyError(.connection, "sending to the server failed: \(String(cString: strerror(errno)))")
        }
    }

    private func readSome(deadline: Double) throws(RemotePolicyError) -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        if let tls {
            var error = [CChar](repeating: 0, count: 512)
            let left = deadline - Self.now()
            guard left > 0 else { throw RemotePolicyError(.timeout, "no answer from the server in time") }
            let n = chunk.withUnsafeMutableBytes {
                sinew_tls_read(
                    tls, $0.baseAddress, $0.count, Int32(max(1, min(left * 1000, 1_000_000))), &error, error.count)
            }
            if n > 0 { return Array(chunk[0..<n]) }
            if n == 0 { throw RemotePolicyError(.connection, "the server closed the connection") }
            if n == -2 { throw RemotePolicyError(.timeout, "no answer from the server in time") }
            throw RemotePolicyError(.connection, "reading from the server failed: \(Self.text(error))")
        }
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n > 0 { return Array(chunk[0..<n]) }
            if n == 0 { throw RemotePolicyError(.connection, "the server closed the connection") }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else {
                throw RemotePolicyError(
                    .connection, "reading from the server failed: \(String(cString: strerror(errno)))")
            }
            let left = deadline - Self.now()
            guard left > 0 else { throw RemotePolicyError(.timeout, "no answer from the server in time") }
            var waiter = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&waiter, 1, Int32(max(1, min(left * 1000, 1_000_000))))
        }
    }

    private func take(_ n: Int, deadline: Double) throws(RemotePolicyError) -> [UInt8] {
        while readBuffer.count < n { readBuffer += try readSome(deadline: deadline) }
        let out = Array(readBuffer[0..<n])
        readBuffer.removeFirst(n)
        return out
    }

    /// Sends one message, masked as clients must (RFC 6455 §5.3).
    public func send(_ message: Message, timeoutS: Double = 5) throws(RemotePolicyError) {
        switch message {
        case .binary(let data): try sendFrame(opcode: 0x2, payload: data, timeoutS: timeoutS)
        case .text(let text): try sendFrame(opcode: 0x1, payload: Array(text.utf8), timeoutS: timeoutS)
        }
    }

    private func sendFrame(opcode: UInt8, payload: [UInt8], timeoutS: Double) throws(RemotePolicyError) {
        var frame: [UInt8] = [0x80 | opcode]
        let n = payload.count
        if n < 126 {
            frame.append(0x80 | UInt8(n))
        } else if n <= 0xFFFF {
            frame.append(0x80 | 126)
            frame += [UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for k in (0..<8).reversed() { frame.append(UInt8((UInt64(n) >> UInt64(8 * k)) & 0xFF)) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255, using: &generator) }
        frame += mask
        frame.reserveCapacity(frame.count + n)
        for (i, byte) in payload.enumerated() { frame.append(byte ^ mask[i & 3]) }
        try sendAll(frame, timeoutS: timeoutS)
    }

    /// The next data message; answers pings on the way. A close frame from the server throws (with its reason).
    public func receive(timeoutS: Double) throws(RemotePolicyError) -> Message {
        let deadline = Self.now() + timeoutS
        var assembled: [UInt8] = []
        var assembledOpcode: UInt8 = 0
        while true {
            let head = try take(2, deadline: deadline)
            let fin = head[0] & 0x80 != 0
            guard head[0] & 0x70 == 0 else {
                throw RemotePolicyError(
                    .protocolViolation, "the server set reserved bits (an extension we did not ask for)")
            }
            let opcode = head[0] & 0x0F
            guard head[1] & 0x80 == 0 else {
                throw RemotePolicyError(.protocolViolation, "the server masked a frame (servers must not)")
            }
            var length = UInt64(head[1] & 0x7F)
            if length == 126 {
                let b = try take(2, deadline: deadline)
                length = UInt64(b[0]) << 8 | UInt64(b[1])
            } else if length == 127 {
                length = 0
                for b in try take(8, deadline: deadline) { length = length << 8 | UInt64(b) }
            }
            guard length <= UInt64(maximumMessageBytes), assembled.count + Int(length) <= maximumMessageBytes else {
                throw RemotePolicyError(
                    .badMessage, "the server sent a message over the \(maximumMessageBytes)-byte limit")
            }
            let payload = try take(Int(length), deadline: deadline)
            switch opcode {
            case 0x8:
                let code = payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 1005
                let reason = payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : ""
                try? sendFrame(opcode: 0x8, payload: Array(payload.prefix(2)), timeoutS: 0.5)
                throw RemotePolicyError(
                    .connection, "the server closed the connection (\(code)\(reason.isEmpty ? "" : ": " + reason))")
            case 0x9:
                guard payload.count <= 125 else { throw RemotePolicyError(.protocolViolation, "a ping over 125 bytes") }
                try sendFrame(opcode: 0xA, payload: payload, timeoutS: 1)
            case 0xA:
                continue
            case 0x0, 0x1, 0x2:
                if opcode != 0 {
                    guard assembled.isEmpty && assembledOpcode == 0 else {
                        throw RemotePolicyError(.protocolViolation, "a new message inside a fragmented one")
                    }
                    assembledOpcode = opcode
                } else if assembledOpcode == 0 {
                    throw RemotePolicyError(.protocolViolation, "a continuation frame without a message")
                }
                assembled += payload
                guard fin else { continue }
                if assembledOpcode == 0x2 { return .binary(assembled) }
                guard let text = String(validating: assembled, as: UTF8.self) else {
                    throw RemotePolicyError(.protocolViolation, "a text frame that is not UTF-8")
                }
                return .text(text)
            default:
                throw RemotePolicyError(.protocolViolation, "unknown websocket opcode \(opcode)")
            }
        }
    }

    /// Sends a close frame and closes the socket.
    public func close(code: UInt16 = 1000) {
        guard descriptor >= 0 else { return }
        try? sendFrame(opcode: 0x8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)], timeoutS: 0.2)
        if let tls { sinew_tls_free(tls) }
        tls = nil
        Glibc.close(descriptor)
        descriptor = -1
    }
}

/// Base64 (RFC 4648, with padding).
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i]
            let b1 = i + 1 < bytes.count ? bytes[i + 1] : 0
            let b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 3) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0xF) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-1 (FIPS 180-4), only for the websocket handshake's accept key, which the protocol defines with it.
enum SHA1 {
    static func digest(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var data = message
        let bitLength = UInt64(message.count) * 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for k in (0..<8).reversed() { data.append(UInt8((bitLength >> UInt64(8 * k)) & 0xFF)) }
        var w = [UInt32](repeating: 0, count: 80)
        for block in stride(from: 0, to: data.count, by: 64) {
            for t in 0..<16 {
                let b = block + 4 * t
                w[t] =
                    UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
            }
            for t in 16..<80 {
                let x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]
                w[t] = x << 1 | x >> 31
            }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for t in 0..<80 {
                let (f, k): (UInt32, UInt32)
                switch t {
                case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (f, k) = (b ^ c ^ d, 0xCA62_C1D6)
                }
                let temp = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[t]
                (e, d, c, b, a) = (d, c, b << 30 | b >> 2, a, temp)
            }
            h[0] &+= a
            h[1] &+= b
            h[2] &+= c
            h[3] &+= d
            h[4] &+= e
        }
        return h.flatMap { v in [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    }
}
