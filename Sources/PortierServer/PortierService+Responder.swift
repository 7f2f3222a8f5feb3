import PortierProtocol
import PortierService
import PortierTransport

/// The service answers the transport's requests: checks from memory on the
/// event loop, everything else asynchronously.
extension PortierService: RequestResponder {
    public func immediateReply(to request: Request, context: RequestContext) -> Reply? {
        immediateAnswer(request)
    }

    public func reply(to request: Request, context: RequestContext) async -> Reply {
        await handle(request, context: context)
    }
}
