import NIOCore
import PortierDomain
import PortierProtocol
import PortierTransport
import Testing

/// Every transition of the connection's state machine, driven directly: no
/// channel, no socket, no database.
@Suite("Connection state machine (docs/rules.md §10, R-SEC-2)")
struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let forbidden = PortierError.forbidden("not this peer")

    func machine(inFlight: Int = 4, framesPerTurn: Int = 100) -> Machine {
        Machine(limits: .init(maximumInFlight: inFlight, idleTimeout: .seconds(10), framesPerTurn: framesPerTurn, bytesPerTurn: 1 << 20), now: Self.start)
    }

    /// A machine past admission, serving.
    func serving(inFlight: Int = 4, framesPerTurn: Int = 100) -> Machine {
        var m = machine(inFlight: inFlight, framesPerTurn: framesPerTurn)
        _ = m.activated(slotTaken: true)
        _ = m.peerIdentified(allowed: true, refusal: Self.forbidden)
        return m
    }

    @Test("admission: no slot → overloaded refusal; a slot, then an allowed peer → serving and decoding")
    func admission() {
        var full = machine()
        let refused = full.activated(slotTaken: false)
        #expect(refused.refuse?.code == .overloaded)
        #expect(full.state == .closing(.refused))
        #expect(full.closed().releaseSlot == false, "no slot was taken, none is given back")

        var m = machine()
        #expect(m.activated(slotTaken: true) == .none)
        #expect(m.state == .admitting)
        #expect(m.readRequested() == false, "nothing is read before the peer is known")
        let admitted = m.peerIdentified(allowed: true, refusal: Self.forbidden)
        #expect(m.state == .serving)
        #expect(admitted.decode)
        #expect(admitted.read, "the read withheld during admission is done now")
        #expect(m.closed().releaseSlot)
    }

    @Test("admission: a peer that is not allowed gets one forbidden frame and the connection closes")
    func refusedPeer() {
        var m = machine()
        _ = m.activated(slotTaken: true)
        let actions = m.peerIdentified(allowed: false, refusal: Self.forbidden)
        #expect(actions.refuse == Self.forbidden)
        #expect(m.state == .closing(.refused))
        #expect(m.bytesReceived(now: Self.start).decode == false, "nothing is answered while closing")
        #expect(m.closed().releaseSlot, "the slot it took is given back")
    }

    @Test("the decode loop is never re-entered; replies inside it are written unflushed and flushed once at its end")
    func noReentrancy() {
        var m = serving()
        #expect(m.bytesReceived(now: Self.start).decode)
        #expect(m.decodeLoopStarting() == true)
        #expect(m.decodeLoopStarting() == false, "a nested loop is refused")
        #expect(m.bytesReceived(now: Self.start).decode == false, "bytes arriving inside the loop do not start another")
        m.frameDecoded(payloadBytes: 10)
        let reply = m.replyReady(inputBuffered: true, now: Self.start)
        #expect(reply.write == .buffered)
        #expect(!reply.decode, "a reply inside the loop does not start decoding again")
        let end = m.decodeLoopEnded(bufferedBytes: 0, yielded: false)
        #expect(end.flush)
        #expect(m.inFlight == 0)
    }

    @Test("in-flight bound: decoding stops at the bound, reading is withheld, and a reply resumes both")
    func inFlightBackpressure() {
        var m = serving(inFlight: 2)
        #expect(m.decodeLoopStarting() == true)
        m.frameDecoded(payloadBytes: 1)
        m.frameDecoded(payloadBytes: 1)
        #expect(m.nextDecodeStep() == .stop)
        _ = m.decodeLoopEnded(bufferedBytes: 50, yielded: false)
        #expect(m.readState == .backpressured(.inFlight))
        #expect(m.readRequested() == false)
        let reply = m.replyReady(inputBuffered: true, now: Self.start)
        #expect(reply.write == .flushed)
        #expect(reply.decode, "frames waiting in the buffer are decoded now")
        #expect(m.readState == .reading)
    }

    @Test("in-flight bound: without buffered input, a reply resumes the withheld read")
    func inFlightReadResumes() {
        var m = serving(inFlight: 1)
        #expect(m.decodeLoopStarting() == true)
        m.frameDecoded(payloadBytes: 1)
        _ = m.decodeLoopEnded(bufferedBytes: 0, yielded: false)
        #expect(m.readRequested() == false)
        let reply = m.replyReady(inputBuffered: false, now: Self.start)
        #expect(reply.read)
    }

    @Test("unread output: decoding stops while the channel is not writable; writability back schedules the loop (not in place)")
    func unreadOutputBackpressure() {
        var m = serving()
        let stalled = m.writabilityChanged(writable: false)
        #expect(stalled.writeStallTimer == .start)
        #expect(m.readState == .backpressured(.unreadOutput))
        #expect(m.decodeLoopStarting() == true)
        #expect(m.nextDecodeStep() == .stop)
        _ = m.decodeLoopEnded(bufferedBytes: 100, yielded: false)
        #expect(m.readRequested() == false)
        let back = m.writabilityChanged(writable: true)
        #expect(back.writeStallTimer == .cancel)
        #expect(back.scheduleDecode && !back.decode)
        #expect(back.read)
    }

    @Test("a client that leaves its replies unread is cut off when the write-stall timer fires, or at once past the hard bound")
    func writeStall() {
        var m = serving()
        _ = m.writabilityChanged(writable: false)
        #expect(m.writeStallTimerFired().close == .writeStall)
        #expect(m.state == .closing(.writeStall))

        var n = serving()
        #expect(n.unreadOutputOverflowed().close == .writeStall)
        #expect(n.writeStallTimerFired() == .none, "no timer was running")
    }

    @Test("R-WAT-1: with watches open, the write-stall timer first ends the watches (overloaded) and runs again; then it cuts the client off")
    func writeStallWithWatches() {
        var m = serving()
        m.watchesChanged(open: 2)
        _ = m.writabilityChanged(writable: false)
        let first = m.writeStallTimerFired()
        #expect(first.endWatches && first.close == nil && first.writeStallTimer == .start)
        #expect(m.state == .serving)
        m.watchesChanged(open: 0)
        let second = m.writeStallTimerFired()
        #expect(second.close == .writeStall && !second.endWatches)
    }

    @Test("R-WAT-1: a connection with a watch is not idle")
    func watchesAreNotIdle() {
        var m = serving()
        m.watchesChanged(open: 1)
        #expect(m.idleCheck(now: Self.start + .seconds(60)).close == nil)
        m.watchesChanged(open: 0)
        #expect(m.idleCheck(now: Self.start + .seconds(60)).close == .idleTimeout)
    }

    @Test("R-WAT-1: a watch's backlog writes at once when nothing waits and the channel is writable, queues otherwise, and overflows past its bound")
    func watchBacklog() {
        var b = WatchBacklog(limit: 10)
        #expect(b.arrived([1, 2, 3], writable: true) == .write)
        #expect(b.arrived([1, 2, 3], writable: false) == .queued)
        #expect(b.arrived([4, 5, 6], writable: true) == .queued, "behind a waiting frame: order kept")
        #expect(b.takeAll() == [[1, 2, 3], [4, 5, 6]] && b.isEmpty)
        #expect(b.arrived(Array(repeating: 0, count: 8), writable: false) == .queued)
        #expect(b.arrived([1, 2, 3], writable: false) == .overflow)
        #expect(b.isEmpty && b.bytes == 0)
    }

    @Test("the loop yields after its budget of frames, holds reads while the backlog waits, and is scheduled once")
    func budget() {
        var m = serving(inFlight: 1000, framesPerTurn: 3)
        #expect(m.decodeLoopStarting() == true)
        for _ in 0..<3 {
            #expect(m.nextDecodeStep() == .decode)
            m.frameDecoded(payloadBytes: 1)
            _ = m.replyReady(inputBuffered: true, now: Self.start)
        }
        #expect(m.nextDecodeStep() == .yield)
        let end = m.decodeLoopEnded(bufferedBytes: 30, yielded: true)
        #expect(end.scheduleDecode)
        #expect(end.flush)
        #expect(end.partialFrameTimer == nil, "complete frames wait on the server, not the client")
        #expect(m.readState == .backpressured(.inputBacklog))
        #expect(m.writabilityChanged(writable: true).scheduleDecode == false, "already scheduled")
        m.scheduledDecodeRunning()
        #expect(m.decodeLoopStarting() == true)
        #expect(m.nextDecodeStep() == .decode, "a new turn has a new budget")
        let finished = m.decodeLoopEnded(bufferedBytes: 0, yielded: false)
        #expect(m.readState == .reading)
        #expect(finished.read == false, "no read was withheld")
    }

    @Test("a partial frame starts the partial-frame timer; completing it cancels; the timer firing closes")
    func partialFrame() {
        var m = serving()
        #expect(m.decodeLoopStarting() == true)
        #expect(m.decodeLoopEnded(bufferedBytes: 3, yielded: false).partialFrameTimer == .start)
        #expect(m.decodeLoopStarting() == true)
        #expect(m.decodeLoopEnded(bufferedBytes: 5, yielded: false).partialFrameTimer == nil, "already running")
        #expect(m.decodeLoopStarting() == true)
        #expect(m.decodeLoopEnded(bufferedBytes: 0, yielded: false).partialFrameTimer == .cancel)
        #expect(m.partialFrameTimerFired() == .none, "a cancelled timer that fires anyway changes nothing")
        #expect(m.decodeLoopStarting() == true)
        _ = m.decodeLoopEnded(bufferedBytes: 3, yielded: false)
        #expect(m.partialFrameTimerFired().close == .partialFrameTimeout)
    }

    @Test("a frame over the limit: one frame_too_large refusal, then closing")
    func frameTooLarge() {
        var m = serving()
        #expect(m.decodeLoopStarting() == true)
        let actions = m.frameTooLarge(PortierError(.frameTooLarge, "too large"))
        #expect(actions.refuse?.code == .frameTooLarge)
        #expect(m.state == .closing(.frameTooLarge))
        #expect(m.nextDecodeStep() == .stop)
        #expect(m.replyReady(inputBuffered: false, now: Self.start).write == nil, "replies of a closing connection are dropped")
    }

    @Test("idle: closes only with nothing in flight and no traffic for the idle timeout")
    func idle() {
        var m = serving()
        #expect(m.idleCheck(now: Self.start + .seconds(9)) == .none)
        _ = m.bytesReceived(now: Self.start + .seconds(5))
        #expect(m.idleCheck(now: Self.start + .seconds(12)) == .none, "traffic restarted the clock")
        #expect(m.decodeLoopStarting() == true)
        m.frameDecoded(payloadBytes: 1)
        _ = m.decodeLoopEnded(bufferedBytes: 0, yielded: false)
        #expect(m.idleCheck(now: Self.start + .seconds(60)) == .none, "a request in flight is not idle")
        _ = m.replyReady(inputBuffered: false, now: Self.start + .seconds(60))
        #expect(m.idleCheck(now: Self.start + .seconds(71)).close == .idleTimeout)
    }

    @Test("R-OPS-1: drain: reading goes on for the read window, every complete frame read is answered, then close")
    func drain() {
        var m = serving()
        #expect(m.decodeLoopStarting() == true)
        m.frameDecoded(payloadBytes: 1)
        _ = m.decodeLoopEnded(bufferedBytes: 0, yielded: false)
        let drain = m.drainRequested()
        #expect(m.state == .draining)
        #expect(drain.drainReadTimer == .start)
        #expect(m.readRequested() == true, "bytes already in the socket are still read during the window")
        let reply = m.replyReady(inputBuffered: true, now: Self.start)
        #expect(reply.write == .flushed)
        #expect(reply.decode, "a frame that already arrived is still answered")
        #expect(m.decodeLoopStarting() == true)
        #expect(m.decodeLoopEnded(bufferedBytes: 2, yielded: false).close == nil, "the read window is still open")
        let windowEnd = m.drainReadWindowEnded()
        #expect(windowEnd.decode)
        #expect(m.readRequested() == false, "nothing more is read after the window")
        #expect(m.decodeLoopStarting() == true)
        #expect(m.decodeLoopEnded(bufferedBytes: 2, yielded: false).close == .drained, "only a partial frame is left: done")

        var busy = serving()
        #expect(busy.decodeLoopStarting() == true)
        busy.frameDecoded(payloadBytes: 1)
        _ = busy.decodeLoopEnded(bufferedBytes: 0, yielded: false)
        _ = busy.drainRequested()
        #expect(busy.drainReadWindowEnded().decode)
        #expect(busy.decodeLoopStarting() == true)
        #expect(busy.decodeLoopEnded(bufferedBytes: 0, yielded: false).close == nil, "a request is still in flight")
        #expect(busy.replyReady(inputBuffered: false, now: Self.start).close == .drained, "its reply ends the drain")
    }

    @Test("R-OPS-1: a connection accepted just before the stop is admitted, then drained: its first request is read and answered")
    func drainWhileAdmitting() {
        var m = machine()
        _ = m.activated(slotTaken: true)
        #expect(m.drainRequested() == .none, "nothing to close yet: the peer is still being identified")
        let admitted = m.peerIdentified(allowed: true, refusal: .forbidden("no"))
        #expect(m.state == .draining)
        #expect(admitted.decode)
        #expect(admitted.drainReadTimer == .start)
        #expect(m.readRequested() == true)
    }

    @Test("a channel error closes; the first close reason is kept")
    func errors() {
        var m = serving()
        _ = m.decodeLoopStarting()
        _ = m.frameTooLarge(PortierError(.frameTooLarge, "x"))
        #expect(m.errorCaught().close == .frameTooLarge)
        var n = serving()
        #expect(n.errorCaught().close == .channelError)
        let (release, actions) = n.closed()
        #expect(release)
        #expect(n.state == .closed)
        #expect(actions.partialFrameTimer == nil)
        #expect(n.errorCaught() == .none)
    }
}
