import PortierDomain
import PortierProtocol

/// One event frame's `event`: a committed transaction's permission changes in
/// one environment (R-WAT-1 in docs/rules.md; `Protocol/README.md` lists the change kinds).
public struct WatchEvent: Sendable, Equatable {
    /// The environment's id.
    public let environment: String
    /// The revision token of the transaction (`env_<n>:<revision>`).
    public let revision: String
    /// Each change: `kind` and the fields of that kind.
    public let changes: [JSONObject]

    public init?(_ event: JSONObject) {
        guard let environment = event["environment"]?.stringValue, let revision = event["revision"]?.stringValue,
              let changes = event["changes"]?.arrayValue?.compactMap(\.objectValue) else { return nil }
        self.environment = environment
        self.revision = revision
        self.changes = changes
    }
}

/// What a `PortierWatch` yields.
public enum WatchUpdate: Sendable, Equatable {
    case event(WatchEvent)
    /// The connection was lost (or the server ended the watch: a stop, a
    /// client that fell behind) and the watch was opened again, resuming
    /// after the last revision seen of each environment. For a watch that
    /// names its environments nothing was missed. A watch of every
    /// environment resumes only the environments it had seen events of: treat
    /// what you cached of the others as stale.
    case resumed
}

/// A watch that survives reconnects (R-WAT-1, docs/rules.md): connects to `path`,
/// opens the watch, and yields its events; when the connection drops or the
/// server ends the watch with `unavailable` or `overloaded`, it connects again
/// (with a growing pause, up to `maximumPause`) and resumes from the last
/// revision it yielded of each environment. `resync_required` (the history is
/// gone), and any other error reply to `watch`, ends the sequence with that
/// error: re-read what you cache, then start a new watch.
///
/// ```swift
/// for try await update in PortierWatch(path: "/run/portier/portier.sock", environments: ["env_12"]) {
///     if case .event(let event) = update { cache.apply(event) }
/// }
/// ```
public struct PortierWatch: AsyncSequence, Sendable {
    public typealias Element = WatchUpdate

    public let path: String
    public let environments: [String]?
    /// Revision tokens to resume after (one per environment).
    public let after: [String]
    public var maximumPause: Duration = .seconds(2)

    public init(path: String, environments: [String]? = nil, after: [String] = []) {
        self.path = path
        self.environments = environments
        self.after = after
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(watch: self)
    }

    /// Owns the current connection; not shared between tasks.
    public final class Iterator: AsyncIteratorProtocol {
        private let watch: PortierWatch
        private var client: PortierClient?
        private var events: AsyncThrowingStream<JSONObject, any Error>.AsyncIterator?
        /// The newest revision token seen of each environment.
        private var positions: [String: String] = [:]
        /// Environments by their last event, oldest first.
        private var order: [String] = []
        private var pause: Duration = .milliseconds(50)
        private var opened = false

        init(watch: PortierWatch) {
            self.watch = watch
            for token in watch.after {
                if let t = RevisionToken(token) {
                    positions[t.environment.description] = token
                    order.append(t.environment.description)
                }
            }
        }

        deinit {
            let client = client
            Task { await client?.close() }
        }

        public func next() async throws -> WatchUpdate? {
            while !Task.isCancelled {
                if events == nil {
                    let reopened = opened
                    guard try await open() else { continue }
                    if reopened { return .resumed }
                }
                do {
                    guard let frame = try await events!.next() else {
                        // Finished quietly: cancelled on this connection.
                        return nil
                    }
                    guard let event = WatchEvent(frame) else { continue }
                    positions[event.environment] = event.revision
                    order.removeAll { $0 == event.environment }
                    order.append(event.environment)
                    pause = .milliseconds(50)  // progress: the next reconnect starts fast again
                    return .event(event)
                } catch let error as PortierError where error.code != .unavailable && error.code != .overloaded {
                    throw error
                } catch {
                    await drop()
                }
            }
            return nil
        }

        /// Connects and opens the watch; false (after a pause) if it could not.
        private func open() async throws -> Bool {
            do {
                let client = try await PortierClient.connect(path: path)
                self.client = client
                // A watch names at most 1000 tokens: a watch of every environment resumes
                // the environments of its latest events (the rest: see `.resumed`).
                let resume = watch.environments == nil
                    ? order.suffix(1000).compactMap { positions[$0] }
                    : Array(positions.values).sorted()
                let opening = try await client.openWatch(environments: watch.environments, after: resume)
                for token in opening.result["revisions"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                    if let t = RevisionToken(token), positions[t.environment.description] == nil { positions[t.environment.description] = token }
                }
                events = opening.events.makeAsyncIterator()
                opened = true
                return true
            } catch let error as PortierError where error.code != .unavailable && error.code != .overloaded {
                await drop()
                throw error
            } catch {
                await drop()
                try await Task.sleep(for: pause)
                pause = Swift.min(pause * 2, watch.maximumPause)
                return false
            }
        }

        private var path: String { watch.path }

        private func drop() async {
            events = nil
            await client?.close()
            client = nil
        }
    }
}
