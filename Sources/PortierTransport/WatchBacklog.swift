import PortierProtocol

/// The event frames of one watch that wait for the client to read
/// (R-WAT-1, docs/rules.md): a watch never writes past the connection's output bound; its
/// frames wait here instead, up to `limit` bytes, and past that the watch
/// ends with `overloaded`. Replies to the connection's other requests are not
/// counted here: they stay under the connection's own output bound.
public struct WatchBacklog: Sendable {
    /// What to do with a frame that arrived.
    public enum Decision: Sendable, Equatable {
        /// Nothing waits and the channel takes bytes: write it now.
        case write
        /// Kept until the channel is writable again.
        case queued
        /// Past the bound: end the watch with `overloaded`.
        case overflow
    }

    public let limit: Int
    public private(set) var frames: [[UInt8]] = []
    public private(set) var bytes = 0

    public init(limit: Int) { self.limit = limit }

    /// A frame arrived for this watch; `writable` is the channel's state.
    public mutating func arrived(_ event: [UInt8], writable: Bool) -> Decision {
        if writable, frames.isEmpty { return .write }
        guard bytes + event.count <= limit else {
            frames = []
            bytes = 0
            return .overflow
        }
        frames.append(event)
        bytes += event.count
        return .queued
    }

    /// Takes the waiting frames, oldest first (the channel is writable again).
    public mutating func takeAll() -> [[UInt8]] {
        defer { frames = []; bytes = 0 }
        return frames
    }

    public var isEmpty: Bool { frames.isEmpty }
}
