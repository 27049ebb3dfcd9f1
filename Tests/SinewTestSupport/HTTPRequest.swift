import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A response of ``httpRequest(port:method:target:headers:)``.
public struct HTTPTestResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` over a plain socket (the server closes after it: `Connection: close`),
/// for tests of Sinew's own servers. `raw` replaces the whole request with bytes of the test's choosing. Gives up
/// after `timeoutS`.
public func httpRequest(
    port: Int, method: String = "GET", target: String, headers: [String: String] = [:], raw: [UInt8]? = nil,
    timeoutS: Double = 10
) throws -> HTTPTestResponse {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HTTPTestError(description: "socket: errno \(errno)") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: Int(timeoutS), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw HTTPTestError(description: "connect to port \(port): errno \(errno)") }
    var request = raw ?? []
    if raw == nil {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if method == "POST" { text += "Content-Length: 0\r\n" }
        text += "\r\n"
        request = Array(text.utf8)
    }
    var sent = 0
    while sent < request.count {
        let n = request[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw HTTPTestError(description: "write: errno \(errno)") }
        sent += n
    }
    if raw != nil { shutdown(fd, Int32(SHUT_WR)) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)) else {
        throw HTTPTestError(description: "no complete response head (\(response.count) bytes)")
    }
    let head = String(decoding: response[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
    let statusLine = head.first?.split(separator: " ") ?? []
    guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
        throw HTTPTestError(description: "bad status line: \(head.first ?? "")")
    }
    var fields: [String: String] = [:]
    for line in head.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    var body = Array(response[split.upperBound...])
    if fields["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
    return HTTPTestResponse(status: status, headers: fields, body: body)
}

/// The payload of a chunked body.
func dechunk(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        guard let end = bytes[i...].firstRange(of: Array("\r\n".utf8)) else { break }
        let sizeText = String(decoding: bytes[i..<end.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
        guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size > 0 else { break }
        let start = end.upperBound
        guard start + size <= bytes.count else { break }
        out += bytes[start..<start + size]
        i = start + size + 2
    }
    return out
}

public struct HTTPTestError: Error, CustomStringConvertible {
    public var description: String
}

/// ``httpRequest(port:method:target:headers:raw:timeoutS:)`` on a thread of its own, for async tests whose server
/// runs in the same process: a blocking read on one of Swift concurrency's few threads could starve that server.
public func httpRequestOffPool(
    port: Int, method: String = "GET", target: String, headers: [String: String] = [:], raw: [UInt8]? = nil,
    timeoutS: Double = 10
) async throws -> HTTPTestResponse {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(
                with: Result {
                    try httpRequest(
                        port: port, method: method, target: target, headers: headers, raw: raw, timeoutS: timeoutS)
                })
        }
        thread.start()
    }
}
