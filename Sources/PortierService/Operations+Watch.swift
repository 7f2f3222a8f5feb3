import PortierDomain
import PortierProtocol

/// `watch` params: `environments`? (ids; omitted: every environment) and
/// `after`? (revision tokens, at most one per environment, to resume from).
struct WatchParams: OperationParams {
    static let keys: Set<String> = ["environments", "after"]
    /// Environments one watch may name.
    static let maximumEnvironments = 1000
    let environments: [EnvironmentID]?
    let after: [EnvironmentID: Int64]

    init(_ params: JSONObject) throws {
        if params["environments"] == nil || params["environments"] == .null {
            environments = nil
        } else {
            let items = try params.requiredArray("environments")
            guard !items.isEmpty, items.count <= Self.maximumEnvironments else {
                throw PortierError.badRequest("params.environments must name 1 to \(Self.maximumEnvironments) environments (omit it to watch every one)")
            }
            var seen = Set<EnvironmentID>()
            environments = try items.enumerated().map { i, item in
                guard case .string(let text) = item, let id = EnvironmentID(text) else {
                    throw PortierError.badRequest("params.environments[\(i)] must be an environment id")
                }
                guard seen.insert(id).inserted else { throw PortierError.badRequest("params.environments names \(id) twice") }
                return id
            }
        }
        var after: [EnvironmentID: Int64] = [:]
        if params["after"] != nil, params["after"] != .null {
            let items = try params.requiredArray("after")
            guard items.count <= Self.maximumEnvironments else { throw PortierError.badRequest("params.after holds too many tokens") }
            for (i, item) in items.enumerated() {
                guard case .string(let text) = item, let token = RevisionToken(text) else {
                    throw PortierError.badRequest("params.after[\(i)] must be a revision token")
                }
                guard after.updateValue(token.revision, forKey: token.environment) == nil else {
                    throw PortierError.badRequest("params.after has two tokens of \(token.environment)")
                }
                if let environments, !environments.contains(token.environment) {
                    throw PortierError.badRequest("params.after[\(i)] is of \(token.environment), which params.environments does not name")
                }
            }
        }
        self.after = after
    }
}

/// `watch.cancel` params: `{watch}`, the id of the `watch` request.
struct WatchCancelParams: OperationParams {
    static let keys: Set<String> = ["watch"]
    let watch: RequestID

    init(_ params: JSONObject) throws {
        switch params["watch"] {
        case .int(let i)?: watch = .int(i)
        case .string(let s)?: watch = .string(s)
        default: throw PortierError.badRequest("params.watch must be the id of a watch request (an integer or a string)")
        }
    }
}

extension PortierService {
    /// `watch` (R-WAT-1): registers the watch; its event frames follow this reply.
    func watch(_ p: WatchParams, _ request: Request, context: RequestContext) async throws -> OperationOutput {
        guard let outlet = context.watchOutlet else {
            throw PortierError.badRequest("watch needs a connection that can carry event frames")
        }
        let key = WatchKey(connection: context.connection, id: request.id)
        let revisions = try await watchHub.register(
            WatchSubscription(key: key, outlet: outlet, environments: p.environments, after: p.after))
        let tokens = (p.environments ?? []).map { e in
            JSONValue.string(RevisionToken(environment: e, revision: revisions[e] ?? 0).description)
        }
        return .result(["watch": request.id.json, "revisions": .array(tokens)])
    }

    /// `watch.cancel`: ends one of this connection's watches; no frame of it follows this reply.
    func watchCancel(_ p: WatchCancelParams, context: RequestContext) throws -> OperationOutput {
        guard watchHub.cancel(WatchKey(connection: context.connection, id: p.watch)) else {
            throw PortierError.notFound("watch \(p.watch) on this connection")
        }
        return .result([:])
    }

    /// The transport ended watches of a connection (see `RequestResponder.watchesEnded`).
    public func watchesEnded(connection: UInt64, ids: [RequestID]?) {
        watchHub.remove(connection: connection, ids: ids)
    }

    /// Open watches, for metrics.
    public var openWatches: Int { watchHub.count }
    /// From hearing of a commit to handing its frames to the connections, for metrics.
    public var watchDelay: SynchronisationLag { watchHub.delay }

    /// Event frames handed to watches so far, for metrics.
    public var watchFramesSent: Int { watchHub.framesSent }
}
