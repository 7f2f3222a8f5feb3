import PortierDomain

/// One side's row of a partnership.
public struct PartnershipRecord: Sendable, Equatable {
    public let environment: EnvironmentID
    public let id: Int64
    public let partner: EnvironmentID
    public let proposer: EnvironmentID
    public let status: PartnershipStatus

    /// Named by the proposer's environment, the same on both sides.
    public var scopedID: ScopedID { ScopedID(.partnership, environment: proposer, raw: id) }

    init(row: Row) throws {
        environment = EnvironmentID(try row.int64("environment_id"))
        id = try row.int64("partnership_id")
        partner = EnvironmentID(try row.int64("partner_environment_id"))
        proposer = EnvironmentID(try row.int64("proposer_environment_id"))
        status = PartnershipStatus(rawValue: try row.string("status")) ?? .pending
    }
}

/// A request waiting in an inbox.
public struct InboxRequestRecord: Sendable, Equatable {
    public let environment: EnvironmentID
    public let id: Int64
    public let kind: String
    public let addressee: Int64?
    public let organisation: ScopedID?
    public let partnershipID: Int64?
    public let status: String

    public var scopedID: ScopedID { ScopedID(.request, environment: environment, raw: id) }

    init(row: Row) throws {
        environment = EnvironmentID(try row.int64("environment_id"))
        id = try row.int64("request_id")
        kind = try row.string("kind")
        addressee = row.optionalInt64("addressee_user_id")
        if let e = row.optionalInt64("organisation_environment_id"), let o = row.optionalInt64("organisation_id") {
            organisation = ScopedID(.organisation, environment: EnvironmentID(e), raw: o)
        } else {
            organisation = nil
        }
        partnershipID = row.optionalInt64("partnership_id")
        status = try row.string("status")
    }
}

extension Transaction {
    // MARK: Partnerships

    /// Writes both sides of a new pending partnership. Rows go in in environment
    /// order so two opposite proposals collide on the unique index instead of deadlocking.
    public func insertPartnership(proposer: EnvironmentID, partner: EnvironmentID) throws -> PartnershipRecord {
        let id = try query("SELECT nextval('partnership_ids') AS id").first!.int64("id")
        var mine: PartnershipRecord?
        for (side, other) in [(proposer, partner), (partner, proposer)].sorted(by: { $0.0 < $1.0 }) {
            let row = try query(
                """
                INSERT INTO partnerships (environment_id, partnership_id, partner_environment_id, proposer_environment_id, status)
                VALUES ($1, $2, $3, $4, 'pending') RETURNING *
                """,
                [side.raw, id, other.raw, proposer.raw]
            ).first!
            if side == proposer { mine = try PartnershipRecord(row: row) }
        }
        return mine!
    }

    /// `environment`'s side of a partnership.
    public func partnership(_ environment: EnvironmentID, id: Int64, lock: Bool = false) throws -> PartnershipRecord? {
        try query(
            "SELECT * FROM partnerships WHERE environment_id = $1 AND partnership_id = $2" + (lock ? " FOR UPDATE" : ""),
            [environment.raw, id]
        ).first.map(PartnershipRecord.init(row:))
    }

    /// The live (pending or active) partnership between two environments, seen from `environment`.
    public func livePartnership(_ environment: EnvironmentID, with partner: EnvironmentID) throws -> PartnershipRecord? {
        try query(
            "SELECT * FROM partnerships WHERE environment_id = $1 AND partner_environment_id = $2 AND status IN ('pending', 'active')",
            [environment.raw, partner.raw]
        ).first.map(PartnershipRecord.init(row:))
    }

    /// Locks both sides' rows of the live (pending or active) partnership between
    /// two environments, in environment order (so that two lockers never
    /// deadlock), and returns `environment`'s side. `share`: a shared lock, for
    /// decisions that depend on the partnership (adding or accepting a partner's
    /// membership); `partnership.end` takes it exclusively, so it waits for them
    /// and they wait for it (R-SEC-4). Both environments must be in scope.
    public func lockLivePartnership(_ environment: EnvironmentID, with partner: EnvironmentID, share: Bool) throws -> PartnershipRecord? {
        try query(
            """
            SELECT * FROM partnerships
            WHERE ((environment_id = $1 AND partner_environment_id = $2) OR (environment_id = $2 AND partner_environment_id = $1))
              AND status IN ('pending', 'active')
            ORDER BY environment_id
            """ + (share ? " FOR SHARE" : " FOR UPDATE"),
            [environment.raw, partner.raw]
        ).rows.map(PartnershipRecord.init(row:)).first { $0.environment == environment }
    }

    /// Locks both sides' rows of one partnership (exclusively, in environment
    /// order) and returns `environment`'s side. Both environments must be in scope.
    public func lockPartnership(_ environment: EnvironmentID, id: Int64, partner: EnvironmentID) throws -> PartnershipRecord? {
        try query(
            """
            SELECT * FROM partnerships WHERE partnership_id = $1 AND environment_id IN ($2, $3)
            ORDER BY environment_id FOR UPDATE
            """,
            [id, environment.raw, partner.raw]
        ).rows.map(PartnershipRecord.init(row:)).first { $0.environment == environment }
    }

    /// The environment's side of its partnerships by id; a page with `after` and `limit`.
    public func partnerships(_ environment: EnvironmentID, after: Int64 = 0, limit: Int? = nil) throws -> [PartnershipRecord] {
        try query(
            "SELECT * FROM partnerships WHERE environment_id = $1 AND partnership_id > $2 ORDER BY partnership_id LIMIT $3",
            [environment.raw, after, limit]
        ).rows.map(PartnershipRecord.init(row:))
    }

    /// Sets both sides' status (both environments in scope).
    public func setPartnershipStatus(id: Int64, _ a: EnvironmentID, _ b: EnvironmentID, to status: PartnershipStatus) throws {
        try query(
            "UPDATE partnerships SET status = $4, changed_at = now() WHERE partnership_id = $1 AND environment_id IN ($2, $3)",
            [id, a.raw, b.raw, status.rawValue]
        )
    }

    // MARK: Inbox

    @discardableResult
    public func insertRequest(_ environment: EnvironmentID, kind: String, addressee: Int64?, organisation: ScopedID?, partnershipID: Int64?) throws -> InboxRequestRecord {
        try InboxRequestRecord(row: try query(
            """
            INSERT INTO inbox_requests (environment_id, kind, addressee_user_id, organisation_environment_id, organisation_id, partnership_id)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING *
            """,
            [environment.raw, kind, addressee, organisation?.environment.raw, organisation?.raw, partnershipID]
        ).first!)
    }

    public func request(_ id: ScopedID, lock: Bool = false) throws -> InboxRequestRecord? {
        try query(
            "SELECT * FROM inbox_requests WHERE environment_id = $1 AND request_id = $2" + (lock ? " FOR UPDATE" : ""),
            [id.environment.raw, id.raw]
        ).first.map(InboxRequestRecord.init(row:))
    }

    /// Pending requests for a user: those addressed to it, and (when it may answer
    /// them) its environment's partnership proposals.
    public func pendingRequests(_ environment: EnvironmentID, user: Int64, includeEnvironmentRequests: Bool, after: Int64 = 0, limit: Int? = nil) throws -> [InboxRequestRecord] {
        try query(
            """
            SELECT * FROM inbox_requests
            WHERE environment_id = $1 AND status = 'pending'
              AND (addressee_user_id = $2 OR ($3 AND addressee_user_id IS NULL)) AND request_id > $4
            ORDER BY request_id LIMIT $5
            """,
            [environment.raw, user, includeEnvironmentRequests, after, limit]
        ).rows.map(InboxRequestRecord.init(row:))
    }

    /// Marks a request answered.
    public func answerRequest(_ id: ScopedID, status: String, by user: Int64?) throws {
        try query(
            "UPDATE inbox_requests SET status = $3, answered_at = now(), answered_by = $4 WHERE environment_id = $1 AND request_id = $2",
            [id.environment.raw, id.raw, status, user]
        )
    }

    /// The pending partnership request in `environment` about a partnership.
    public func partnershipRequest(_ environment: EnvironmentID, partnershipID: Int64) throws -> InboxRequestRecord? {
        try query(
            "SELECT * FROM inbox_requests WHERE environment_id = $1 AND kind = 'partnership' AND partnership_id = $2 AND status = 'pending'",
            [environment.raw, partnershipID]
        ).first.map(InboxRequestRecord.init(row:))
    }

    /// The pending membership request for (user, organisation).
    public func membershipRequest(user: ScopedID, organisation: ScopedID) throws -> InboxRequestRecord? {
        try query(
            """
            SELECT * FROM inbox_requests WHERE environment_id = $1 AND addressee_user_id = $2 AND kind = 'membership'
              AND organisation_environment_id = $3 AND organisation_id = $4 AND status = 'pending'
            """,
            [user.environment.raw, user.raw, organisation.environment.raw, organisation.raw]
        ).first.map(InboxRequestRecord.init(row:))
    }
}
