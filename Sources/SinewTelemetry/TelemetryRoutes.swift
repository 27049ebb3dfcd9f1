import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import NIOCore
import SinewRuntime

/// The dashboard's routes and the checks every request passes.
enum TelemetryRoutes {
    /// The page's files, embedded in the executable (Sources/SinewTelemetry/Web).
    static let files: [String: (bytes: [UInt8], type: String)] = [
        "/": (PackageResources.index_html, "text/html; charset=utf-8"),
        "/index.html": (PackageResources.index_html, "text/html; charset=utf-8"),
        "/app.js": (PackageResources.app_js, "text/javascript; charset=utf-8"),
        "/plots.js": (PackageResources.plots_js, "text/javascript; charset=utf-8"),
        "/view3d.js": (PackageResources.view3d_js, "text/javascript; charset=utf-8"),
        "/style.css": (PackageResources.style_css, "text/css; charset=utf-8"),
    ]

    static let securityHeaders: HTTPFields = [
        .cacheControl: "no-store",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("Content-Security-Policy")!:
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    ]

    static func bytes(_ bytes: [UInt8], type: String, status: HTTPResponse.Status = .ok, cookie: String? = nil)
        -> Response
    {
        var headers = securityHeaders
        headers[.contentType] = type
        if let cookie { headers[.setCookie] = cookie }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func authorized(_ request: Request, hub: TelemetryHub) -> Bool {
        RequestToken.authorizes(
            hub.token, authorization: request.headers[.authorization], cookie: request.headers[.cookie],
            target: request.uri.description)
    }

    static func refused(_ hub: TelemetryHub, html: Bool) -> Response {
        hub.metrics.refusedRequests.increment()
        let text =
            html
            ? """
            <!doctype html><meta charset="utf-8"><title>Sinew: token required</title>
            <body><h1>Token required</h1>
            <p id="refused">This dashboard needs the token the robot printed when it started: open the address it
            printed (<code>http://HOST:PORT/?token=…</code>), or start it with <code>--token-file</code>.</p></body>
            """ : "token required: Authorization: Bearer TOKEN\n"
        return bytes(Array(text.utf8), type: html ? "text/html; charset=utf-8" : "text/plain", status: .unauthorized)
    }

    /// A state-changing request with the cookie must come from the page itself (the browser names its origin).
    static func sameOrigin(_ origin: String?, host: String?) -> Bool {
        guard let origin else { return true }
        guard let host else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }

    static func dashboardRouter(hub: TelemetryHub) -> Router<BasicRequestContext> {
        let router = Router()
        for (path, file) in files {
            router.get(RouterPath(stringLiteral: path)) { request, _ -> Response in
                guard authorized(request, hub: hub) else { return refused(hub, html: true) }
                // The page's own requests and its socket carry the token as a cookie from here on.
                let cookie =
                    path == "/" || path == "/index.html"
                    ? "\(RequestToken.cookieName)=\(hub.token.value); Path=/; HttpOnly; SameSite=Strict" : nil
                return bytes(file.bytes, type: file.type, cookie: cookie)
            }
        }
        router.get("/robot.json") { request, _ -> Response in
            guard authorized(request, hub: hub) else { return refused(hub, html: false) }
            return bytes(hub.robot.descriptionJSON, type: "application/json")
        }
        router.get("/mesh/:index") { request, context -> Response in
            guard authorized(request, hub: hub) else { return refused(hub, html: false) }
            guard let text = context.parameters.get("index"), text.utf8.count <= 6, let index = Int(text),
                hub.robot.meshFiles.indices.contains(index),
                let data = FileManager.default.contents(atPath: hub.robot.meshFiles[index]),
                data.count <= RobotVisualDescription.maximumMeshBytes
            else { return bytes(Array("no such mesh\n".utf8), type: "text/plain", status: .notFound) }
            return bytes(Array(data), type: "application/octet-stream")
        }
        router.get("/api/state") { request, _ -> Response in
            guard authorized(request, hub: hub) else { return refused(hub, html: false) }
            return bytes(hub.feed.latestFrame.bytes, type: "application/json")
        }
        router.get("/api/health") { request, _ -> Response in
            guard authorized(request, hub: hub) else { return refused(hub, html: false) }
            return bytes(hub.feed.latestHealth.bytes, type: "application/json")
        }
        for (path, command) in [("/api/estop", DashboardCommand.emergencyStop), ("/api/recover", .recover)] {
            router.post(RouterPath(stringLiteral: path)) { request, _ -> Response in
                guard authorized(request, hub: hub) else { return refused(hub, html: false) }
                guard sameOrigin(request.headers[.origin], host: request.head.authority) else {
                    return bytes(Array("cross-origin request refused\n".utf8), type: "text/plain", status: .forbidden)
                }
                guard hub.perform(command) else {
                    return bytes(Array("no e-stop here\n".utf8), type: "text/plain", status: .serviceUnavailable)
                }
                return bytes(Array("{\"ok\":true}".utf8), type: "application/json")
            }
        }
        return router
    }

    /// The WebSocket upgrade of `/ws`: the token (cookie or query) and, when the browser names one, the page's own
    /// origin are required.
    static func upgrade(_ request: HTTPRequest, hub: TelemetryHub)
        -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>>
    {
        let target = request.path ?? ""
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard path == "/ws" else { return .dontUpgrade }
        let ok =
            RequestToken.authorizes(
                hub.token, authorization: request.headerFields[.authorization], cookie: request.headerFields[.cookie],
                target: target) && sameOrigin(request.headerFields[.origin], host: request.authority)
        guard ok else {
            hub.metrics.refusedRequests.increment()
            return .dontUpgrade
        }
        return .upgrade([:]) { inbound, outbound, _ in
            try await DashboardSession(hub: hub).serve(inbound: inbound, outbound: outbound)
        }
    }
}

/// One dashboard client on its WebSocket: the robot's description first, then each new frame (30 Hz), health
/// message (2 Hz) and event list; its text messages are ``DashboardCommand``s.
struct DashboardSession {
    let hub: TelemetryHub

    func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let count = hub.clients.add(1, ordering: .relaxed).newValue
        hub.metrics.dashboardClients.record(count)
        defer {
            let left = hub.clients.subtract(1, ordering: .relaxed).newValue
            hub.metrics.dashboardClients.record(left)
        }
        let hub = hub
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await outbound.write(.text(String(decoding: hub.feed.hello, as: UTF8.self)))
                var sent = (frame: 0, health: 0, events: 0)
                while !Task.isCancelled {
                    let events = hub.feed.latestEvents
                    if events.sequence != sent.events {
                        sent.events = events.sequence
                        try await outbound.write(.text(String(decoding: events.bytes, as: UTF8.self)))
                    }
                    let health = hub.feed.latestHealth
                    if health.sequence != sent.health {
                        sent.health = health.sequence
                        try await outbound.write(.text(String(decoding: health.bytes, as: UTF8.self)))
                    }
                    let frame = hub.feed.latestFrame
                    if frame.sequence != sent.frame {
                        sent.frame = frame.sequence
                        try await outbound.write(.text(String(decoding: frame.bytes, as: UTF8.self)))
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            for try await message in inbound.messages(maxSize: 4096) {
                guard case .text(let text) = message else { continue }
                let reply: String
                if let command = DashboardCommand(message: text) {
                    reply =
                        hub.perform(command)
                        ? "{\"type\":\"ack\",\"command\":\"\(text.trimmingCharacters(in: .whitespacesAndNewlines))\"}"
                        : "{\"type\":\"error\",\"message\":\"no e-stop here\"}"
                } else {
                    reply = "{\"type\":\"error\",\"message\":\"unknown command: send estop or recover\"}"
                }
                try await outbound.write(.text(reply))
            }
            group.cancelAll()
        }
    }
}
