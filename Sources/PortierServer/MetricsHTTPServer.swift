import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves `GET /metrics` (Prometheus text format) on a loopback TCP port or a
/// Unix socket, for a Prometheus scraper. Anything else gets 404.
public final class MetricsHTTPServer: Sendable {
    /// Where to listen: `127.0.0.1:9464`, `[::1]:9464`, or `unix:/run/portier/metrics.sock`.
    public enum Address: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)

        public init?(_ text: String) {
            if text.hasPrefix("unix:") {
                self = .unix(path: String(text.dropFirst(5)))
                return
            }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            self = .tcp(host: host, port: port)
        }
    }

    private let channel: any Channel

    private init(channel: any Channel) { self.channel = channel }

    /// Starts listening; `render` produces the page for each scrape.
    public static func start(at address: Address, render: @escaping @Sendable () -> String, logger: Logger) async throws -> MetricsHTTPServer {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(MetricsHTTPHandler(render: render))
                }
            }
        let channel: any Channel
        switch address {
        case .tcp(let host, let port): channel = try await bootstrap.bind(host: host, port: port).get()
        case .unix(let path): channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        }
        logger.info("metrics listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return MetricsHTTPServer(channel: channel)
    }

    /// The bound address (the port, when 0 was asked for).
    public var localAddress: SocketAddress? { channel.localAddress }

    public func stop() async { try? await channel.close() }
}

/// One HTTP/1.1 connection of the metrics listener.
final class MetricsHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let render: @Sendable () -> String

    init(render: @escaping @Sendable () -> String) { self.render = render }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let found = head.method == .GET && (head.uri == "/metrics" || head.uri.hasPrefix("/metrics?"))
        let page = found ? render() : ""
        // Empty until the server serves (the listener opens before the database):
        // 503, so a scraper does not record a page without metrics as a good one.
        let ready = !page.isEmpty
        let body = !found ? "not found: GET /metrics\n" : ready ? page : "starting: no metrics yet\n"
        let status: HTTPResponseStatus = !found ? .notFound : ready ? .ok : .serviceUnavailable
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: found && ready ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let keepAlive = head.isKeepAlive
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { bound.value.close(promise: nil) }
        }
    }
}
