import PortierDomain
import PortierProtocol
import PortierStorage

extension PortierService {
    /// `environment.get`: the actor's environment with its domains, administrators
    /// and warnings (R-USR-9).
    func environmentGet(_ request: Request) async throws -> OperationOutput {
        let actor = try await actorReference(request)
        return try await transaction(environments: [actor.environment]) { tx in
            _ = try Self.activeActor(tx, actor)
            guard let record = try tx.environment(actor.environment) else { throw PortierError.notFound("environment") }
            return .result(["environment": record.json])
        }
    }

    /// Deletes rows of the logs past their retention: the index change log,
    /// recipient counts, and permission events older than the watch history
    /// (raising each environment's floor, R-WAT-1). Returns how many rows of
    /// the two change logs went.
    public func pruneLogs() async throws -> (indexChanges: Int, permissionEvents: Int) {
        let history = configuration.watchHistorySeconds
        return try await transaction { tx in
            try tx.becomeJanitor()
            _ = try tx.pruneRecipientMessages()
            let changes = try tx.pruneIndexChanges(olderThanSeconds: IndexStore.changeLogRetentionSeconds)
            return (changes, try tx.prunePermissionEvents(olderThanSeconds: history))
        }
    }

    /// Settles environments whose creator's activation window has passed
    /// (R-ENV-7): one where a colleague activated gets its earliest active user
    /// as administrator; one where nobody activated is deleted, freeing its
    /// domain claim. Returns how many were deleted. Run periodically.
    public func purgeUnactivatedEnvironments(batch: Int = 100) async throws -> Int {
        let expired = try await transaction { tx in try tx.expiredUnactivatedEnvironments(limit: batch) }
        var deleted = 0
        let pausing = configuration.pausePoints
        for environment in expired {
            // The environment's row is locked first, as an activation locks it
            // (R-SEC-4): the two exclude each other.
            let gone = try await transaction(environments: [environment], locking: environment) { tx in
                // Re-check inside the transaction: an activation may have just landed.
                guard try tx.isExpiredUnactivated(environment) else { return false }
                if pausing { try tx.pause(at: .purgeChecked) }
                return try Self.settleActivationWindow(tx, environment)
            }
            if gone { deleted += 1 }
        }
        if deleted > 0 { logger.info("deleted unactivated environments", metadata: ["count": "\(deleted)"]) }
        return deleted
    }

    /// R-ENV-7 once an environment's activation window has passed (the caller
    /// holds its row lock and saw the window expired): with an activated
    /// colleague, the earliest becomes administrator (audited, with the
    /// revision bumped); with nobody activated, the environment is deleted.
    /// Returns whether it was deleted.
    static func settleActivationWindow(_ tx: Transaction, _ environment: EnvironmentID) throws -> Bool {
        guard let colleague = try tx.earliestActiveUser(environment) else {
            try tx.deleteEnvironment(environment)
            return true
        }
        if try tx.activeAdministrators(environment).isEmpty, colleague.role != .administrator {
            _ = try tx.updateUser(environment, colleague.id, role: .administrator)
            let change: JSONValue = ["before": ["role": .string(colleague.role.rawValue)], "after": ["role": "administrator"],
                                     "reason": "the creator's activation window passed; earliest activated user"]
            try tx.audit(environment: environment, actor: .system, op: "user.set_role", target: colleague.scopedID.description, details: change.jsonText)
        }
        try tx.markEnvironmentActivated(environment)
        _ = try tx.bumpRevision(environment)
        return false
    }
}
