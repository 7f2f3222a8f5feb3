import Foundation
import Logging
import PortierStorage
import Synchronization
import NIOCore
import PortierClient
import PortierDomain
import PortierProtocol
import PortierServer
import PortierTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Metrics (Deploy/README.md, Metrics)")
struct MetricsTests {
    /// The value of the first sample line starting with `prefix`.
    func sample(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test("support.metrics counts requests by operation and outcome, times them, and reports connections, the pool and the index; the service socket may not ask")
    func supportMetrics() async throws {
        try await withServer { server in
            let client = try await server.client()
            let s = Scenario(client)
            let admin = try await s.environment("metrics.test")
            for _ in 0..<3 { #expect(try await client.call("ping").isEmpty) }
            _ = try await client.send("user.get", actor: admin.id, params: ["user": "usr_999_999"])
            // The first check misses (PostgreSQL answers, the environment loads in the
            // background); a bulk check waits for the load; the next ones hit the index.
            #expect(try await s.check(admin.id, "users.invite") == (true, "env_administrator"))
            #expect(try await s.checkLoading(admin.id, "users.invite") == (true, "env_administrator"))
            for _ in 0..<2 { #expect(try await s.check(admin.id, "users.invite") == (true, "env_administrator")) }
            let refused = try await client.send("support.metrics")
            #expect(refused.errorCode == .forbidden)

            let support = try await server.client(support: true)
            let text = try await support.call("support.metrics")["text"]!.stringValue!
            #expect(sample(text, #"portier_requests_total{op="ping",code="ok"}"#) == 3)
            #expect(sample(text, #"portier_requests_total{op="user.get",code="not_found"}"#) == 1)
            #expect(sample(text, #"portier_requests_total{op="support.metrics",code="forbidden"}"#) == 1)
            #expect(sample(text, #"portier_request_duration_seconds_count{op="check"}"#) == 3)
            #expect(sample(text, "portier_connections") == 2)
            #expect((sample(text, #"portier_db_pool_connections{state="open"}"#) ?? 0) >= 1)
            #expect(sample(text, "portier_index_environments") == 1)
            #expect((sample(text, "portier_index_bytes") ?? 0) > 0)
            #expect((sample(text, #"portier_index_lookups_total{result="hit"}"#) ?? 0) >= 1)
            await support.close()
            await client.close()
        }
    }

    @Test("--metrics-listen serves GET /metrics over HTTP; other paths get 404")
    func httpExporter() async throws {
        try await withServer { server in
            let exporter = try await MetricsHTTPServer.start(at: .tcp(host: "127.0.0.1", port: 0), render: { server.server.metricsText() }, logger: TestDatabase.logger)
            defer { Task { await exporter.stop() } }
            let port = exporter.localAddress!.port!
            let client = try await server.client()
            #expect(try await client.call("ping").isEmpty)
            let page = try httpGet(port: port, path: "/metrics")
            #expect(page.hasPrefix("HTTP/1.1 200"))
            #expect(page.contains("text/plain; version=0.0.4"))
            #expect(page.contains(#"portier_requests_total{op="ping",code="ok"} 1"#))
            #expect(try httpGet(port: port, path: "/").hasPrefix("HTTP/1.1 404"))
            await client.close()
        }
    }

    @Test("slow requests, and requests failing with internal or unavailable, are logged with request id, op, environment and duration; others are not")
    func slowRequestLog() async throws {
        let lines = Mutex<[String]>.Shared()
        let logger = Logger(label: "slow") { _ in
            var handler = CapturingLogHandler(lines: lines)
            handler.logLevel = .info
            return handler
        }
        let threshold = 1_000.0
        let database = try await TestDatabase.create()
        let server = try await TestServer.start(database: database, logger: logger) { transport, _ in
            transport.slowRequestThreshold = .milliseconds(Int64(threshold))
        }
        defer { Task { await server.stop() } }
        let client = try await server.client()
        let admin = try await Scenario(client).environment("slow.test")
        // Hold a row lock so that the next change waits well past the threshold.
        let blocker = try PostgresConnection(conninfo: database.ownerConninfo)
        try blocker.execute("BEGIN")
        try blocker.query("SELECT 1 FROM environments FOR UPDATE")
        let slow = Task { try await client.send("user.invite", actor: admin.id, params: ["email": "late@slow.test"]) }
        try await Task.sleep(for: .milliseconds(Int64(threshold * 1.5)))
        try blocker.execute("COMMIT")
        let slowReply = try await slow.value
        #expect(slowReply.errorCode == nil, "the held invitation succeeds once the lock is released")
        #expect(try await client.call("ping").isEmpty)
        let logged = lines.value.withLock { $0.filter { $0.contains("slow request") } }
        // The held invitation is logged, once, with everything needed to find it.
        let invites = logged.filter { $0.contains(#""op": user.invite"#) }
        #expect(invites.count == 1, "\(logged)")
        let line = invites.first ?? ""
        for part in [#""request_id": "#, #""environment": env_"#, #""duration_ms": "#, #""code": ok"#] where !line.contains(part) {
            Issue.record("\(part) missing in: \(line)")
        }
        // Whatever else was logged (a loaded machine may slow the set-up down) did take longer than the threshold:
        // a request that finished ok below it is never logged.
        for entry in logged {
            guard let duration = Self.duration(in: entry) else { Issue.record("no duration in: \(entry)"); continue }
            #expect(duration >= threshold, "\(entry)")
        }
        await client.close()
    }

    /// The `duration_ms` value of a captured log line.
    static func duration(in line: String) -> Double? {
        guard let range = line.range(of: #""duration_ms": "#) else { return nil }
        return Double(line[range.upperBound...].prefix { $0.isNumber || $0 == "." })
    }

    /// A minimal blocking HTTP/1.1 GET with `Connection: close`.
    func httpGet(port: Int, path: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress!, request.count, 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }
}
