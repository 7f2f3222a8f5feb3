import PortierDomain
import PortierProtocol

/// Answers without a database: `ping` with `{}`, `hello` with the limits,
/// every other operation with `unavailable`, all on the event loop. Stands in
/// for the service where the transport itself is under test: the handler
/// tests, the transport fuzzer and `portier-bench parse`.
public struct OfflineResponder: RequestResponder {
    public let limits: FrameLimits

    public init(limits: FrameLimits = FrameLimits()) {
        self.limits = limits
    }

    public func immediateReply(to request: Request, context: RequestContext) -> Reply? {
        switch request.op {
        case "ping":
            return .success(request.id, [:])
        case "hello":
            return .success(request.id, [
                "server": "portierd-offline",
                "protocol": .int(Int64(ProtocolVersion.current)),
                "socket": .string(context.socket.rawValue),
                "limits": [
                    "max_frame_bytes": .int(Int64(limits.maximumFrameBytes)),
                    "max_json_depth": .int(Int64(limits.json.maximumDepth)),
                ],
            ])
        default:
            return .failure(request.id, .unavailable("no database behind this transport"))
        }
    }

    public func reply(to request: Request, context: RequestContext) async -> Reply {
        immediateReply(to: request, context: context)!
    }
}
