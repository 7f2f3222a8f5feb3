import NIOCore
import PortierDomain
import PortierProtocol

/// The life of one client connection as a value: events in, actions out.
///
/// `ConnectionHandler` owns the bytes, the channel and the timers and performs
/// the `Actions` this type returns; every decision is made here: when to decode
/// frames, read, flush, close, and which timer runs. No I/O and no clock (time
/// comes in with the events), so each transition is tested directly
/// (`ConnectionStateMachineTests`). Modelled on postgres-nio's connection state
/// machines.
///
/// The decode loop is never re-entered: a reply produced while frames are being
/// decoded only counts down (the loop goes on), and work that becomes possible
/// from inside another action (room after a flush) is scheduled for the next
/// event-loop turn instead of run in place. A loop also yields after a budget
/// of frames or bytes, so one connection's burst cannot hold its event loop.
public struct ConnectionStateMachine: Sendable {
    /// Where the connection is in its life.
    public enum State: Sendable, Equatable {
        /// Accepted; the peer's credentials are not yet known. Nothing is read.
        case admitting
        /// Frames are read, decoded and answered.
        case serving
        /// Graceful stop (R-OPS-1): for the drain's read window, what already
        /// reached the socket is still read; every complete frame read is
        /// answered; then the connection closes (with the `closing` frame)
        /// once nothing is in flight.
        case draining
        /// A close was decided; nothing more is read or answered.
        case closing(CloseReason)
        /// The channel is gone.
        case closed
    }

    /// Why reading is paused while the connection serves (`ReadState`).
    public struct Backpressure: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `maximumInFlight` requests are being worked on.
        public static let inFlight = Backpressure(rawValue: 1)
        /// The client has more than the output bound of replies unread.
        public static let unreadOutput = Backpressure(rawValue: 2)
        /// Complete frames wait to be decoded on the next turn (the loop yielded).
        public static let inputBacklog = Backpressure(rawValue: 4)
    }

    /// Whether the connection takes more bytes from the client now.
    public enum ReadState: Sendable, Equatable {
        case reading
        case backpressured(Backpressure)
        case notReading
    }

    /// Why a connection is closed.
    public enum CloseReason: String, Sendable, Equatable {
        /// Over the connection limit, or a peer not allowed on the socket.
        case refused
        /// A header announced a frame over the limit.
        case frameTooLarge = "frame_too_large"
        /// A frame was begun but not finished in time.
        case partialFrameTimeout = "partial_frame_timeout"
        /// Nothing in flight and no traffic for the idle timeout.
        case idleTimeout = "idle_timeout"
        /// The client left its replies unread past the output bound for too long,
        /// or far past it.
        case writeStall = "write_stall"
        /// Graceful stop, everything read answered (the `closing` frame precedes the close).
        case drained
        /// A channel error (a reset by the peer…).
        case channelError = "channel_error"
    }

    /// Start or cancel a timer.
    public enum TimerChange: Sendable, Equatable { case start, cancel }

    /// How a reply goes out.
    public enum Write: Sendable, Equatable {
        /// Written now, flushed when the decode loop ends (one syscall per burst).
        case buffered
        /// Written and flushed now.
        case flushed
    }

    /// What the handler does after an event, in this order: write the reply,
    /// send the refusal, flush, change timers, read, close, decode.
    public struct Actions: Sendable, Equatable {
        /// Write the reply that completed (nil: drop it, the connection is closing).
        public var write: Write?
        /// Send one error frame, then close.
        public var refuse: PortierError?
        public var flush = false
        public var partialFrameTimer: TimerChange?
        public var writeStallTimer: TimerChange?
        /// The drain's read window (R-OPS-1).
        public var drainReadTimer: TimerChange?
        /// Ask the channel for more bytes.
        public var read = false
        /// Close now.
        public var close: CloseReason?
        /// Run the decode loop now (only from a top-level event).
        public var decode = false
        /// Run the decode loop on the next event-loop turn.
        public var scheduleDecode = false
        /// End every watch with `overloaded` (their client left its output
        /// unread past the write-stall timeout; the connection stays).
        public var endWatches = false

        public init() {}
        public static let none = Actions()
    }

    /// What the loop does next.
    public enum DecodeStep: Sendable, Equatable {
        /// Decode the next complete frame, if there is one.
        case decode
        /// Stop: backpressure or closing.
        case stop
        /// Stop for this turn: the budget is used up.
        case yield
    }

    /// The limits a connection keeps.
    public struct Limits: Sendable, Equatable {
        public var maximumInFlight: Int
        public var idleTimeout: TimeAmount
        /// Frames, and payload bytes, decoded in one turn of the event loop
        /// before the loop yields to other connections.
        public var framesPerTurn: Int
        public var bytesPerTurn: Int

        public init(maximumInFlight: Int, idleTimeout: TimeAmount, framesPerTurn: Int = 256, bytesPerTurn: Int = 1 << 20) {
            self.maximumInFlight = maximumInFlight
            self.idleTimeout = idleTimeout
            self.framesPerTurn = framesPerTurn
            self.bytesPerTurn = bytesPerTurn
        }
    }

    public private(set) var state: State = .admitting
    public private(set) var inFlight = 0
    /// Watches open on the connection: while there is one, it is not idle (R-WAT-1).
    public private(set) var watches = 0
    private let limits: Limits
    private var writable = true
    private var holdsSlot = false
    private var readWithheld = false
    private var decoding = false
    private var decodeScheduled = false
    private var backlog = false
    private var repliesUnflushed = false
    private var partialFrameTimerRunning = false
    private var writeStallTimerRunning = false
    /// A drain was asked for before the peer was identified: it starts at admission.
    private var drainPending = false
    /// Draining, and still reading what reached the socket (the read window).
    private var drainReading = false
    private var framesThisTurn = 0
    private var bytesThisTurn = 0
    private var lastActivity: NIODeadline

    public init(limits: Limits, now: NIODeadline) {
        self.limits = limits
        self.lastActivity = now
    }

    /// What holds reading back now.
    public var readState: ReadState {
        guard takesBytes else { return .notReading }
        let pressure = backpressure
        return pressure.isEmpty ? .reading : .backpressured(pressure)
    }

    private var backpressure: Backpressure {
        var pressure: Backpressure = []
        if inFlight >= limits.maximumInFlight { pressure.insert(.inFlight) }
        if !writable { pressure.insert(.unreadOutput) }
        if backlog { pressure.insert(.inputBacklog) }
        return pressure
    }

    private var answering: Bool { state == .serving || state == .draining }

    /// Whether bytes are read from the socket at all (backpressure aside).
    private var takesBytes: Bool { state == .serving || (state == .draining && drainReading) }

    /// Draining, done reading, and nothing in flight: time to close.
    private var drainDone: Bool { state == .draining && !drainReading && inFlight == 0 }

    // MARK: Admission

    /// The channel became active; `slotTaken` tells whether the socket's
    /// connection limit had room (the slot is given back at `closed`).
    public mutating func activated(slotTaken: Bool) -> Actions {
        guard state == .admitting else { return .none }
        holdsSlot = slotTaken
        guard slotTaken else { return refuse(PortierError(.overloaded, "too many connections; retry later")) }
        return .none
    }

    /// The peer's credentials were read and judged.
    public mutating func peerIdentified(allowed: Bool, refusal: PortierError) -> Actions {
        guard state == .admitting else { return .none }
        guard allowed else { return refuse(refusal) }
        state = .serving
        if drainPending {
            // Accepted just before the stop: its first request is read and answered too.
            var actions = drainRequested()
            actions.decode = true
            return actions
        }
        var actions = Actions()
        actions.decode = true
        actions.read = takeWithheldRead()
        return actions
    }

    private mutating func refuse(_ error: PortierError) -> Actions {
        state = .closing(.refused)
        var actions = Actions()
        actions.refuse = error
        return actions
    }

    // MARK: Reading

    /// NIO asks to read: true to read now; otherwise the read is remembered and
    /// done once the backpressure ends.
    public mutating func readRequested() -> Bool {
        if takesBytes, backpressure.isEmpty { return true }
        readWithheld = true
        return false
    }

    private mutating func takeWithheldRead() -> Bool {
        guard readWithheld, takesBytes, backpressure.isEmpty else { return false }
        readWithheld = false
        return true
    }

    /// Bytes arrived (the handler appended them to its buffer).
    public mutating func bytesReceived(now: NIODeadline) -> Actions {
        lastActivity = now
        var actions = Actions()
        actions.decode = answering && !decoding
        return actions
    }

    // MARK: The decode loop

    /// Whether a decode loop may start now (never inside another one).
    public mutating func decodeLoopStarting() -> Bool {
        guard answering, !decoding else { return false }
        decoding = true
        framesThisTurn = 0
        bytesThisTurn = 0
        return true
    }

    /// The scheduled continuation of a yielded loop is running.
    public mutating func scheduledDecodeRunning() {
        decodeScheduled = false
    }

    /// Before each frame: decode, stop, or yield the event loop.
    public func nextDecodeStep() -> DecodeStep {
        guard answering else { return .stop }
        if inFlight >= limits.maximumInFlight || !writable { return .stop }
        if framesThisTurn >= limits.framesPerTurn || bytesThisTurn >= limits.bytesPerTurn { return .yield }
        return .decode
    }

    /// A complete frame was taken from the buffer; it is now in flight.
    public mutating func frameDecoded(payloadBytes: Int) {
        inFlight += 1
        framesThisTurn += 1
        bytesThisTurn += payloadBytes
    }

    /// A header announced more than the frame limit.
    public mutating func frameTooLarge(_ error: PortierError) -> Actions {
        guard answering else { return .none }
        state = .closing(.frameTooLarge)
        var actions = Actions()
        actions.refuse = error
        actions.partialFrameTimer = cancelPartialFrameTimer()
        return actions
    }

    /// The loop stopped; `bufferedBytes` are left in the input buffer, and
    /// `yielded` says whether it stopped for the budget.
    public mutating func decodeLoopEnded(bufferedBytes: Int, yielded: Bool) -> Actions {
        decoding = false
        var actions = Actions()
        if repliesUnflushed {
            repliesUnflushed = false
            actions.flush = true
        }
        guard answering else { return actions }
        backlog = yielded
        if yielded, !decodeScheduled {
            decodeScheduled = true
            actions.scheduleDecode = true
        }
        // Waiting for the rest of a frame from the client: only then does the
        // partial-frame clock run (not while the server itself holds back).
        let waitingForClient = state == .serving && bufferedBytes > 0 && !yielded && backpressure.isEmpty
        if waitingForClient, !partialFrameTimerRunning {
            partialFrameTimerRunning = true
            actions.partialFrameTimer = .start
        } else if !waitingForClient {
            actions.partialFrameTimer = cancelPartialFrameTimer()
        }
        if drainDone, !yielded, backpressure.isEmpty {
            // Nothing in flight and no complete frame left: done.
            actions.close = close(.drained)
            return actions
        }
        actions.read = takeWithheldRead()
        return actions
    }

    private mutating func cancelPartialFrameTimer() -> TimerChange? {
        guard partialFrameTimerRunning else { return nil }
        partialFrameTimerRunning = false
        return .cancel
    }

    // MARK: Replies

    /// A request's reply is ready; `inputBuffered` says whether bytes wait in the
    /// input buffer (complete frames may be among them).
    public mutating func replyReady(inputBuffered: Bool, now: NIODeadline) -> Actions {
        inFlight -= 1
        lastActivity = now
        var actions = Actions()
        guard answering else { return actions }
        if decoding {
            actions.write = .buffered
            repliesUnflushed = true
            return actions
        }
        actions.write = .flushed
        if inputBuffered {
            actions.decode = true
        } else if drainDone {
            actions.close = close(.drained)
        } else {
            actions.read = takeWithheldRead()
        }
        return actions
    }

    /// After a write, the client had this many reply bytes unread, more than the
    /// hard bound (four times the output bound): cut it off.
    public mutating func unreadOutputOverflowed() -> Actions {
        guard answering else { return .none }
        var actions = Actions()
        actions.close = close(.writeStall)
        return actions
    }

    /// The channel's writability changed (its unread output crossed the bound).
    public mutating func writabilityChanged(writable: Bool) -> Actions {
        self.writable = writable
        var actions = Actions()
        if !writable {
            if !writeStallTimerRunning, answering {
                writeStallTimerRunning = true
                actions.writeStallTimer = .start
            }
            return actions
        }
        if writeStallTimerRunning {
            writeStallTimerRunning = false
            actions.writeStallTimer = .cancel
        }
        guard answering else { return actions }
        // May arrive from inside a flush: continue on the next turn, not in place.
        if !decodeScheduled, !decoding {
            decodeScheduled = true
            actions.scheduleDecode = true
        }
        actions.read = takeWithheldRead()
        return actions
    }

    // MARK: Timers and stop

    /// The partial-frame timer fired.
    public mutating func partialFrameTimerFired() -> Actions {
        guard partialFrameTimerRunning else { return .none }
        partialFrameTimerRunning = false
        guard answering else { return .none }
        var actions = Actions()
        actions.close = close(.partialFrameTimeout)
        return actions
    }

    /// The write-stall timer fired: the client still has not read its replies.
    /// With watches open, they end first (their frames are what piles up,
    /// R-WAT-1) and the timer runs once more; then the connection closes.
    public mutating func writeStallTimerFired() -> Actions {
        guard writeStallTimerRunning else { return .none }
        writeStallTimerRunning = false
        guard answering || state == .admitting else { return .none }
        var actions = Actions()
        if watches > 0 {
            actions.endWatches = true
            writeStallTimerRunning = true
            actions.writeStallTimer = .start
            return actions
        }
        actions.close = close(.writeStall)
        return actions
    }

    /// The number of open watches changed.
    public mutating func watchesChanged(open: Int) {
        watches = open
    }

    /// The periodic idle check.
    public mutating func idleCheck(now: NIODeadline) -> Actions {
        guard answering || state == .admitting, inFlight == 0, watches == 0, now - lastActivity >= limits.idleTimeout else { return .none }
        var actions = Actions()
        actions.close = close(.idleTimeout)
        return actions
    }

    /// Graceful stop requested (R-OPS-1). Reading goes on for the read window,
    /// so that requests already in the socket's buffer are answered too; a
    /// connection still being admitted drains once its peer is identified.
    public mutating func drainRequested() -> Actions {
        var actions = Actions()
        switch state {
        case .admitting:
            drainPending = true
        case .serving:
            state = .draining
            drainReading = true
            actions.drainReadTimer = .start
            actions.partialFrameTimer = cancelPartialFrameTimer()
            actions.read = takeWithheldRead()
            if !decoding { actions.decode = true }
        case .draining, .closing, .closed:
            break
        }
        return actions
    }

    /// The drain's read window is over: nothing more is read; what was read is
    /// answered, then the connection closes.
    public mutating func drainReadWindowEnded() -> Actions {
        guard state == .draining, drainReading else { return .none }
        drainReading = false
        var actions = Actions()
        if !decoding { actions.decode = true }
        return actions
    }

    /// A channel error.
    public mutating func errorCaught() -> Actions {
        guard state != .closed else { return .none }
        var actions = Actions()
        actions.close = close(.channelError)
        return actions
    }

    private mutating func close(_ reason: CloseReason) -> CloseReason {
        if case .closing(let earlier) = state { return earlier }
        state = .closing(reason)
        return reason
    }

    /// The channel is inactive. Returns whether the connection held a slot of
    /// the socket's connection limit (to give back) and which timers to cancel.
    public mutating func closed() -> (releaseSlot: Bool, Actions) {
        state = .closed
        var actions = Actions()
        actions.partialFrameTimer = cancelPartialFrameTimer()
        if writeStallTimerRunning {
            writeStallTimerRunning = false
            actions.writeStallTimer = .cancel
        }
        let release = holdsSlot
        holdsSlot = false
        return (release, actions)
    }
}
