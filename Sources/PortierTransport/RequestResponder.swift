import PortierProtocol

/// What the transport needs from whoever answers requests: the server's
/// `PortierService`, or a stand-in without a database (tests, the fuzzer).
public protocol RequestResponder: Sendable {
    /// The reply if it can be given right now, on the event loop, without
    /// waiting for anything (a check answered from memory, a decoding error);
    /// nil sends the request down the asynchronous path.
    func immediateReply(to request: Request, context: RequestContext) -> Reply?

    /// The reply, however long it takes (database, password hashing). Never
    /// throws: failures are error replies. Should return early when the task
    /// is cancelled (its client went away).
    func reply(to request: Request, context: RequestContext) async -> Reply

    /// Watches of connection `connection` ended on the transport's side (a
    /// slow reader cut off, a graceful stop, the connection gone): `ids` nil
    /// means all of them. Called on the event loop: must not block.
    func watchesEnded(connection: UInt64, ids: [RequestID]?)
}

extension RequestResponder {
    public func watchesEnded(connection: UInt64, ids: [RequestID]?) {}
}
