import Foundation
import Logging
import PortierDomain
import PortierProtocol
import PortierStorage
import Synchronization

/// A watch: its connection and the id of its `watch` request (the id its
/// event frames carry).
struct WatchKey: Hashable, Sendable {
    let connection: UInt64
    let id: RequestID
}

/// What one `watch` asked for, validated.
struct WatchSubscription: Sendable {
    let key: WatchKey
    let outlet: any WatchOutlet
    /// nil: every environment.
    let environments: [EnvironmentID]?
    /// Resume positions (`after`), by environment.
    let after: [EnvironmentID: Int64]
}

/// The watches of this instance and the one task that feeds them (R-WAT-1, docs/rules.md).
///
/// Commits are heard as revisions: this instance's own (the commit report),
/// other instances' (the revision NOTIFY). The feeder reads the new events of
/// the environments heard of from the permission event log, in one statement
/// for all of them, encodes each transaction's frame once, and hands it to
/// every watch of that environment through its connection's `WatchOutlet`.
/// One task does all reads and registrations, so frames of an environment go
/// out in revision order and a new watch joins between two reads, never
/// during one.
///
/// Positions: `known[e]` is the revision through which the hub has read
/// environment `e`; a watch is there unless its `apart[e]` says otherwise
/// (behind: it resumed from an older revision and is being replayed to;
/// ahead: it started at a revision the hub has not read yet).
final class WatchHub: Sendable {
    /// Limits of the hub.
    struct Limits: Sendable {
        var perConnection: Int
        var total: Int
        /// Events read per environment in one statement (whole transactions).
        var eventsPerRead = 10_000
        /// Test only: registrations wait at `PausePoint.watchPositionsRead`.
        var pausing = false
    }

    private struct Watcher {
        let outlet: any WatchOutlet
        /// nil: every environment.
        let environments: Set<EnvironmentID>?
        var apart: [EnvironmentID: Int64] = [:]
    }

    private struct State {
        var watchers: [WatchKey: Watcher] = [:]
        var perConnection: [UInt64: Int] = [:]
        var byEnvironment: [EnvironmentID: Set<WatchKey>] = [:]
        var everywhere: Set<WatchKey> = []
        var known: [EnvironmentID: Int64] = [:]
        /// `known` holds every environment (a watch of every environment exists).
        var knowsAll = false
        /// Environments to read, with the newest revision heard of.
        var dirty: [EnvironmentID: Int64] = [:]
        /// When a commit of each dirty environment was first heard of (the delay histogram).
        var heardAt: [EnvironmentID: ContinuousClock.Instant] = [:]
        var rescan = false
        var registrations: [(WatchSubscription, CheckedContinuation<[EnvironmentID: Int64], any Error>)] = []
        var stopped = false

        func interested(in environment: EnvironmentID) -> Bool {
            !everywhere.isEmpty || !(byEnvironment[environment]?.isEmpty ?? true)
        }

        func watchers(of environment: EnvironmentID) -> Set<WatchKey> {
            everywhere.union(byEnvironment[environment] ?? [])
        }

        mutating func remove(_ key: WatchKey) -> Watcher? {
            guard let watcher = watchers.removeValue(forKey: key) else { return nil }
            perConnection[key.connection, default: 1] -= 1
            if perConnection[key.connection] == 0 { perConnection[key.connection] = nil }
            if let environments = watcher.environments {
                for e in environments {
                    byEnvironment[e]?.remove(key)
                    if byEnvironment[e]?.isEmpty ?? false {
                        byEnvironment[e] = nil
                        if !knowsAll { known[e] = nil }
                    }
                }
            } else {
                everywhere.remove(key)
                if everywhere.isEmpty {
                    knowsAll = false
                    known = known.filter { byEnvironment[$0.key] != nil }
                }
            }
            return watcher
        }
    }

    private let state = Mutex(State())
    /// Signalled whenever there is work; the feeder drains all of it per wake-up.
    private let wakeups = DispatchSemaphore(value: 0)
    /// Resumed when the feeder's thread has ended.
    private let finished = Mutex<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
    /// Reads on a connection of their own: never behind requests in the pool's queue.
    private let reader: DedicatedReader
    private let limits: Limits
    private let logger: Logger

    init(pool: ConnectionPool, limits: Limits, logger: Logger) {
        self.reader = pool.dedicatedReader(role: Schema.watcherRole)
        self.limits = limits
        self.logger = logger
        // A thread of its own, reading with blocking calls: the feed never
        // waits for a turn on the Swift concurrency pool, which requests keep
        // busy (under load those waits were most of the event delay).
        let thread = Thread { [self] in
            run()
            let waiter = finished.withLock { f in f.done = true; defer { f.waiter = nil }; return f.waiter }
            waiter?.resume()
        }
        thread.name = "portier-watch-feeder"
        thread.start()
    }

    private func wake() { wakeups.signal() }

    /// Open watches (metrics).
    var count: Int { state.withLock { $0.watchers.count } }
    /// Event frames handed to outlets so far (metrics; never reset).
    var framesSent: Int { sent.load(ordering: .relaxed) }
    private let sent = Atomic<Int>(0)
    /// From hearing of a commit to handing its frames to the connections.
    var delay: SynchronisationLag { delays.withLock { $0 } }
    private let delays = Mutex(SynchronisationLag())

    // MARK: From requests and connections

    /// Registers a watch; returns the current revision of each environment it
    /// names (none for a watch of every environment). Its frames follow
    /// through its outlet, after this returns.
    func register(_ subscription: WatchSubscription) async throws -> [EnvironmentID: Int64] {
        try await withCheckedThrowingContinuation { continuation in
            let stopped = state.withLock { s in
                if !s.stopped { s.registrations.append((subscription, continuation)) }
                return s.stopped
            }
            if stopped { continuation.resume(throwing: PortierError.unavailable("the server is stopping")) } else { wake() }
        }
    }

    /// `watch.cancel`: ends the watch quietly. False if there is no such watch.
    func cancel(_ key: WatchKey) -> Bool {
        guard let watcher = state.withLock({ $0.remove(key) }) else { return false }
        watcher.outlet.finish(key.id, error: nil)
        return true
    }

    /// The transport ended these watches (nil: all of the connection's).
    func remove(connection: UInt64, ids: [RequestID]?) {
        state.withLock { s in
            guard s.perConnection[connection] != nil else { return }
            let keys = ids.map { $0.map { WatchKey(connection: connection, id: $0) } }
                ?? s.watchers.keys.filter { $0.connection == connection }
            for key in keys { _ = s.remove(key) }
        }
    }

    /// Revisions committed (by this instance or another): their events are read
    /// for the watches of their environments.
    func heard(_ tokens: [RevisionToken]) {
        let wanted = state.withLock { s -> Bool in
            var any = false
            for token in tokens {
                let env = token.environment
                guard s.known[env] != nil || s.knowsAll, s.interested(in: env) else { continue }
                if let k = s.known[env], token.revision <= k { continue }
                s.dirty[env] = max(s.dirty[env] ?? 0, token.revision)
                if s.heardAt[env] == nil { s.heardAt[env] = .now }
                any = true
            }
            return any
        }
        if wanted { wake() }
    }

    /// Notifications may have been lost (the listener reconnected): compare
    /// every followed environment's revision with the database's.
    func rescan() {
        let wanted = state.withLock { s -> Bool in
            guard !s.watchers.isEmpty else { return false }
            s.rescan = true
            return true
        }
        if wanted { wake() }
    }

    /// Stops the feeder; registrations waiting fail with `unavailable`.
    /// Open watches are ended by the transport (a final `unavailable` frame at drain).
    func stop() async {
        let waiting = state.withLock { s in
            s.stopped = true
            defer { s.registrations = [] }
            return s.registrations.map(\.1)
        }
        for w in waiting { w.resume(throwing: PortierError.unavailable("the server is stopping")) }
        wake()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = finished.withLock { f in
                if !f.done { f.waiter = continuation }
                return f.done
            }
            if done { continuation.resume() }
        }
        reader.close()
    }

    // MARK: The feeder

    private func run() {
        while true {
            wakeups.wait()
            if state.withLock({ $0.stopped }) { return }
            while !state.withLock({ $0.stopped }) {
                if let (subscription, continuation) = state.withLock({ s in s.registrations.isEmpty ? nil : s.registrations.removeFirst() }) {
                    do { continuation.resume(returning: try admit(subscription)) } catch { continuation.resume(throwing: error) }
                    continue
                }
                if state.withLock({ s in defer { s.rescan = false }; return s.rescan }) {
                    rescanNow()
                    continue
                }
                let (dirty, heard) = state.withLock { s in defer { s.dirty = [:]; s.heardAt = [:] }; return (s.dirty, s.heardAt) }
                if dirty.isEmpty { break }
                feed(Array(dirty.keys))
                let now = ContinuousClock.now
                if !heard.isEmpty { delays.withLock { d in for at in heard.values { d.add(now - at) } } }
            }
        }
    }

    /// Reads where the environments stand, as the watcher role (`registering`:
    /// for a new watch, which a test may hold right after the read).
    private func positions(_ environments: [EnvironmentID]?, registering: Bool = false) throws -> [EnvironmentID: WatchPosition] {
        let pausing = registering && limits.pausing
        return try reader.read { tx in
            let positions = try tx.watchPositions(environments)
            if pausing { try tx.pause(at: .watchPositionsRead) }
            return positions
        }
    }

    /// Checks a subscription against the database and the limits and adds it.
    private func admit(_ s: WatchSubscription) throws -> [EnvironmentID: Int64] {
        var readAll = s.environments == nil && !state.withLock { $0.knowsAll }
        while true {
            if let revisions = try admit(s, readingAll: readAll) { return revisions }
            readAll = true  // the last watch of every environment went meanwhile: read them all
        }
    }

    /// One attempt: nil when a watch of every environment needs every
    /// environment's position and `readingAll` did not read them.
    private func admit(_ s: WatchSubscription, readingAll: Bool) throws -> [EnvironmentID: Int64]? {
        let asked = Array(Set((s.environments ?? []) + s.after.keys)).sorted()
        let positions = try positions(readingAll ? nil : asked, registering: true)
        // A watch of every environment resuming one that was deleted since has
        // nothing to resume there; a watch naming it is told.
        let after = s.environments == nil ? s.after.filter { positions[$0.key] != nil } : s.after
        let named = s.environments == nil ? asked.filter { positions[$0] != nil } : asked
        for e in named where positions[e] == nil { throw PortierError.notFound("environment \(e)") }
        for (e, revision) in after.sorted(by: { $0.key < $1.key }) {
            let p = positions[e]!
            if revision < p.floor {
                throw PortierError(.resyncRequired, "the history of \(e) after revision \(revision) is gone (kept from \(p.floor)): re-read, then watch from the current revision")
            }
            if revision > p.revision {
                throw PortierError.badRequest("\(RevisionToken(environment: e, revision: revision)) is ahead of \(e), which is at revision \(p.revision)")
            }
        }
        return try state.withLock { st throws(PortierError) -> [EnvironmentID: Int64]? in
            // The connection went while the positions were read: its close
            // already cleared its watches, and would not see this one.
            guard s.outlet.isOpen else { throw PortierError.unavailable("the connection closed") }
            if s.environments == nil, !st.knowsAll, !readingAll { return nil }
            guard st.watchers[s.key] == nil else { throw PortierError.conflict("this connection already has a watch with id \(s.key.id)") }
            guard st.perConnection[s.key.connection, default: 0] < limits.perConnection else {
                throw PortierError(.overloaded, "a connection may hold \(limits.perConnection) watches; cancel one first")
            }
            guard st.watchers.count < limits.total else { throw PortierError(.overloaded, "this server holds its limit of \(limits.total) watches") }
            var watcher = Watcher(outlet: s.outlet, environments: s.environments.map(Set.init))
            if let environments = s.environments {
                for e in environments {
                    if st.known[e] == nil {
                        // Watches of every environment are at 0 in an environment
                        // created after they read them all; a first named watch
                        // starts the hub where it starts.
                        st.known[e] = st.knowsAll ? 0 : positions[e]!.revision
                    }
                    st.byEnvironment[e, default: []].insert(s.key)
                }
            } else {
                if !st.knowsAll {
                    for (e, p) in positions where st.known[e] == nil { st.known[e] = p.revision }
                    st.knowsAll = true
                    // A commit heard while the positions were read was dropped
                    // (nobody followed it yet): compare them all once more.
                    st.rescan = true
                }
                for e in named where st.known[e] == nil { st.known[e] = 0 }
                st.everywhere.insert(s.key)
            }
            // Where this watch starts in each environment it names or resumes.
            for e in named {
                let start = after[e] ?? positions[e]!.revision
                let known = st.known[e] ?? start
                if start != known { watcher.apart[e] = start }
                // Always read once more: a commit heard while the positions
                // were read may have been dropped (nobody followed it yet).
                st.dirty[e] = max(st.dirty[e] ?? 0, positions[e]!.revision)
            }
            st.watchers[s.key] = watcher
            st.perConnection[s.key.connection, default: 0] += 1
            return s.environments == nil ? [:] : positions.mapValues(\.revision).filter { s.environments!.contains($0.key) }
        }
    }

    private func rescanNow() {
        let (all, followed) = state.withLock { ($0.knowsAll, Array($0.known.keys)) }
        guard let current = try? positions(all ? nil : followed) else {
            state.withLock { $0.rescan = true }
            Thread.sleep(forTimeInterval: 0.25)
            return
        }
        state.withLock { s in
            for e in followed where current[e] == nil { s.dirty[e] = s.dirty[e] ?? 0 }  // gone: the feed ends its watches
            for (e, p) in current where p.revision > (s.known[e] ?? 0) && (s.known[e] != nil || s.knowsAll) {
                s.dirty[e] = max(s.dirty[e] ?? 0, p.revision)
            }
        }
    }

    /// Reads the new events of `environments` and hands their frames out.
    private func feed(_ environments: [EnvironmentID]) {
        let from = state.withLock { s -> [EnvironmentID: Int64] in
            var from: [EnvironmentID: Int64] = [:]
            for e in environments where s.interested(in: e) {
                if s.known[e] == nil {
                    guard s.knowsAll else { continue }
                    s.known[e] = 0  // created after the hub read them all: every event is new
                }
                var base = s.known[e]!
                for key in s.watchers(of: e) { if let a = s.watchers[key]?.apart[e] { base = min(base, a) } }
                from[e] = base
            }
            return from
        }
        guard !from.isEmpty else { return }
        let batch: PermissionEventBatch
        // Bounded in total, not only per environment: a read of many
        // environments far behind takes a share of each, and goes on next time.
        let perEnvironment = max(50, limits.eventsPerRead / from.count)
        do {
            batch = try reader.read { tx in
                try tx.permissionEvents(after: from, limit: perEnvironment)
            }
        } catch {
            logger.warning("could not read permission events for watches; retrying", metadata: ["error": "\(error)"])
            state.withLock { s in for e in from.keys { s.dirty[e] = s.dirty[e] ?? 0 } }
            Thread.sleep(forTimeInterval: 0.25)
            return
        }
        var framesByEnvironment: [EnvironmentID: [(revision: Int64, event: [UInt8])]] = [:]
        for f in WatchFrames.frames(batch.events) { framesByEnvironment[f.environment, default: []].append((f.revision, f.event)) }

        var sends: [(any WatchOutlet, RequestID, [UInt8])] = []
        var ends: [(any WatchOutlet, RequestID)] = []
        var resyncs: [(any WatchOutlet, RequestID, EnvironmentID, Int64)] = []
        state.withLock { s in
            for e in from.keys {
                guard let through = batch.readThrough[e] else {
                    // The environment was deleted: its watches end.
                    for key in s.byEnvironment[e] ?? [] { if let w = s.remove(key) { ends.append((w.outlet, key.id)) } }
                    s.known[e] = nil
                    continue
                }
                let frames = framesByEnvironment[e] ?? []
                let known = s.known[e] ?? 0
                let newKnown = max(known, through)
                let floor = batch.floors[e] ?? 0
                for key in s.watchers(of: e) {
                    guard var w = s.watchers[key] else { continue }
                    let position = w.apart[e] ?? known
                    if position < floor {
                        // Pruned before it was read: this watch cannot be complete any more.
                        if let w = s.remove(key) { resyncs.append((w.outlet, key.id, e, position)) }
                        continue
                    }
                    for f in frames where f.revision > position { sends.append((w.outlet, key.id, f.event)) }
                    let now = max(position, through)
                    let apart: Int64? = now == newKnown ? nil : now
                    if w.apart[e] != apart {
                        w.apart[e] = apart
                        s.watchers[key] = w
                    }
                    if let apart, apart < newKnown { s.dirty[e] = s.dirty[e] ?? 0 }  // still replaying
                }
                // Only if someone still follows it: a watch that left during the
                // read must not leave a stale position for a later watch.
                if s.known[e] != nil || s.knowsAll { s.known[e] = newKnown }
                if batch.incomplete.contains(e) { s.dirty[e] = s.dirty[e] ?? 0 }
            }
        }
        // One hand-over per connection: its frames in order, one wake-up and one flush.
        var byOutlet: [ObjectIdentifier: (outlet: any WatchOutlet, frames: [(id: RequestID, event: [UInt8])])] = [:]
        var outlets: [ObjectIdentifier] = []
        for (outlet, id, event) in sends {
            let key = ObjectIdentifier(outlet)
            if byOutlet[key] == nil {
                byOutlet[key] = (outlet, [])
                outlets.append(key)
            }
            byOutlet[key]!.frames.append((id, event))
        }
        for key in outlets { byOutlet[key]!.outlet.send(byOutlet[key]!.frames) }
        if !sends.isEmpty { sent.add(sends.count, ordering: .relaxed) }
        for (outlet, id) in ends { outlet.finish(id, error: .notFound("the watched environment was deleted")) }
        for (outlet, id, e, position) in resyncs {
            outlet.finish(id, error: PortierError(.resyncRequired, "the history of \(e) after revision \(position) was pruned before this watch read it: re-read, then watch again"))
        }
    }
}
