import NIOCore

/// Where the frames of a connection's watches go (R-WAT-1, docs/rules.md): the
/// transport's side of `watch`, handed to the service with each request
/// (`RequestContext.watchOutlet`). The service pushes; the transport decides
/// when the bytes go out, holds a bounded backlog per watch, and tells the
/// service when a watch ends on its side (`RequestResponder.watchesEnded`).
///
/// Both methods may be called from any thread and must not block.
public protocol WatchOutlet: AnyObject, Sendable {
    /// Event frames for this connection's watches, in order: each `event` is
    /// the JSON text of a frame's `event` object, encoded once for every
    /// watcher. One call per connection per read of the feeder, so a
    /// connection holding several watches is woken (and flushed) once.
    func send(_ frames: [(id: RequestID, event: [UInt8])])
    /// The watch `id` ended on the service's side: with a final error frame,
    /// or quietly (nil: `watch.cancel`).
    func finish(_ id: RequestID, error: PortierError?)
    /// False once the connection is gone: a watch registered through it
    /// after that would never be ended, so the service refuses it.
    var isOpen: Bool { get }
}

extension ByteBuffer {
    /// Writes an event frame: `{"id": <watch id>, "event": <event>}`.
    public mutating func writeEventFrame(_ id: RequestID, event: [UInt8]) {
        writeFrame { out in
            out.writeStaticString("{\"id\":")
            out.writeJSON(id.json)
            out.writeStaticString(",\"event\":")
            out.writeBytes(event)
            out.writeStaticString("}")
        }
    }
}
