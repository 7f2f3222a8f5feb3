import NIOCore
import PortierProtocol

/// The limits and timeouts one connection keeps (see `ServerConfiguration` for
/// what each protects against and its default).
public struct ConnectionSettings: Sendable {
    public var frameLimits: FrameLimits
    /// Requests of one connection worked on at once; past it, reading pauses.
    public var maximumInFlight: Int
    /// Unread reply bytes past which reading pauses; at four times this the
    /// connection is cut off.
    public var maximumOutputBytes: Int
    public var idleTimeout: TimeAmount
    /// Event bytes one watch may have waiting for a client that does not read;
    /// past it the watch ends with `overloaded` (R-WAT-1).
    public var maximumWatchBacklogBytes: Int
    public var partialFrameTimeout: TimeAmount
    public var writeStallTimeout: TimeAmount
    /// Requests slower than this are logged (warning).
    public var slowRequestThreshold: TimeAmount
    /// Frames and payload bytes decoded per event-loop turn before yielding.
    public var framesPerTurn: Int
    public var bytesPerTurn: Int
    /// How long a draining connection still reads what reached its socket
    /// (R-OPS-1); whatever arrives later is named unread by the `closing` frame.
    public var drainReadWindow: TimeAmount

    public init(
        frameLimits: FrameLimits = FrameLimits(),
        maximumInFlight: Int = 128,
        maximumOutputBytes: Int = 1 << 20,
        maximumWatchBacklogBytes: Int = 1 << 20,
        idleTimeout: TimeAmount = .seconds(300),
        partialFrameTimeout: TimeAmount = .seconds(10),
        writeStallTimeout: TimeAmount = .seconds(10),
        slowRequestThreshold: TimeAmount = .milliseconds(500),
        framesPerTurn: Int = 256,
        bytesPerTurn: Int = 1 << 20,
        drainReadWindow: TimeAmount = .milliseconds(100)
    ) {
        self.frameLimits = frameLimits
        self.maximumInFlight = maximumInFlight
        self.maximumOutputBytes = maximumOutputBytes
        self.maximumWatchBacklogBytes = maximumWatchBacklogBytes
        self.idleTimeout = idleTimeout
        self.partialFrameTimeout = partialFrameTimeout
        self.writeStallTimeout = writeStallTimeout
        self.slowRequestThreshold = slowRequestThreshold
        self.framesPerTurn = framesPerTurn
        self.bytesPerTurn = bytesPerTurn
        self.drainReadWindow = drainReadWindow
    }

    var machineLimits: ConnectionStateMachine.Limits {
        .init(maximumInFlight: maximumInFlight, idleTimeout: idleTimeout, framesPerTurn: framesPerTurn, bytesPerTurn: bytesPerTurn)
    }
}
