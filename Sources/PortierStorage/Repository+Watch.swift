import PortierDomain

/// One row of the permission event log (schema v5): a change of one permission
/// fact, in the environment whose feed it belongs to.
public struct PermissionEventRecord: Sendable, Equatable {
    public let environment: EnvironmentID
    public let revision: Int64
    /// `user.role_changed`, `membership.accepted`, … (the `kind` column's list).
    public let kind: String
    public let user: ScopedID?
    public let organisation: ScopedID?
    public let partnership: ScopedID?
    /// For partnership events: the other side, seen from `environment`.
    public let partner: EnvironmentID?
    /// The role and status after the change (for a removal: the last ones).
    public let role: String?
    public let status: String?
    /// The role or status before the change, for the `*_changed`, `accepted`
    /// and partnership kinds.
    public let previous: String?

    init(row: Row, environment: EnvironmentID) throws {
        self.environment = environment
        revision = try row.int64("revision")
        kind = try row.string("kind")
        func scoped(_ kind: EntityKind, _ env: String, _ id: String) -> ScopedID? {
            guard let e = row.optionalInt64(env), let i = row.optionalInt64(id) else { return nil }
            return ScopedID(kind, environment: EnvironmentID(e), raw: i)
        }
        user = scoped(.user, "user_environment_id", "user_id")
        organisation = scoped(.organisation, "organisation_environment_id", "organisation_id")
        partnership = scoped(.partnership, "partnership_environment_id", "partnership_id")
        partner = row.optionalInt64("partner_environment_id").map(EnvironmentID.init)
        role = row["role"]
        status = row["status"]
        previous = row["previous"]
    }
}

/// Where a watched environment stands: its current revision, and the newest
/// revision whose events were pruned (0: none).
public struct WatchPosition: Sendable, Equatable {
    public let revision: Int64
    public let floor: Int64
}

/// Events read for a set of environments.
public struct PermissionEventBatch: Sendable {
    /// Per environment read: the revision through which `events` are complete.
    /// An environment missing here no longer exists.
    public var readThrough: [EnvironmentID: Int64] = [:]
    /// Whole transactions, ordered by environment, revision and event.
    public var events: [PermissionEventRecord] = []
    /// Environments with more events than one read takes: read again.
    public var incomplete: Set<EnvironmentID> = []
    /// Per environment read: the newest revision whose events were pruned (a
    /// reader behind it has lost events: `resync_required`).
    public var floors: [EnvironmentID: Int64] = [:]
}

extension Transaction {
    /// The current revision and history floor of each environment named (nil:
    /// of every environment). As `Schema.watcherRole` (a `DedicatedReader` in that role).
    public func watchPositions(_ environments: [EnvironmentID]?) throws -> [EnvironmentID: WatchPosition] {
        let filter = environments == nil ? "" : "WHERE e.environment_id = ANY ($1::bigint[])"
        let rows = try query(
            """
            SELECT e.environment_id, e.revision, coalesce(f.pruned_through, 0) AS floor
            FROM environments e LEFT JOIN permission_event_floors f USING (environment_id) \(filter)
            """,
            environments.map { [BigIntArray($0.map(\.raw))] } ?? []
        ).rows
        var positions: [EnvironmentID: WatchPosition] = [:]
        for row in rows {
            positions[EnvironmentID(try row.int64("environment_id"))] = WatchPosition(
                revision: try row.int64("revision"), floor: try row.int64("floor"))
        }
        return positions
    }

    /// The events of each environment after its given revision, through its
    /// current one: at most `limit` rows per environment, in whole transactions
    /// (a single transaction bigger than `limit` comes whole). One statement,
    /// so the events and the revisions read through are of one instant. As
    /// `Schema.watcherRole` (a `DedicatedReader` in that role).
    public func permissionEvents(after positions: [EnvironmentID: Int64], limit: Int) throws -> PermissionEventBatch {
        let ordered = positions.sorted { $0.key < $1.key }
        let rows = try query(
            """
            SELECT w.env, env.revision AS current, coalesce(f.pruned_through, 0) AS floor, p.*
            FROM unnest($1::bigint[], $2::bigint[]) AS w(env, after)
            JOIN environments env ON env.environment_id = w.env
            LEFT JOIN permission_event_floors f ON f.environment_id = w.env
            LEFT JOIN LATERAL (
                SELECT * FROM permission_events p
                WHERE p.environment_id = w.env AND p.revision > w.after AND p.revision <= env.revision
                ORDER BY p.revision, p.event_id LIMIT $3
            ) p ON true
            ORDER BY w.env, p.revision, p.event_id
            """,
            [BigIntArray(ordered.map(\.key.raw)), BigIntArray(ordered.map(\.value)), limit]
        ).rows
        var batch = PermissionEventBatch()
        var index = 0
        while index < rows.count {
            let environment = EnvironmentID(try rows[index].int64("env"))
            var through = try rows[index].int64("current")
            batch.floors[environment] = try rows[index].int64("floor")
            var events: [PermissionEventRecord] = []
            while index < rows.count, try rows[index].int64("env") == environment.raw {
                if rows[index]["kind"] != nil { events.append(try PermissionEventRecord(row: rows[index], environment: environment)) }
                index += 1
            }
            if events.count >= limit, let first = events.first, let last = events.last {
                batch.incomplete.insert(environment)
                if first.revision != last.revision {
                    // The last transaction may be cut: leave it to the next read.
                    events.removeAll { $0.revision == last.revision }
                    through = last.revision - 1
                } else {
                    events = try permissionEvents(environment, revision: last.revision)
                    through = last.revision
                }
            }
            batch.readThrough[environment] = through
            batch.events += events
        }
        return batch
    }

    /// Every event of one revision of an environment.
    private func permissionEvents(_ environment: EnvironmentID, revision: Int64) throws -> [PermissionEventRecord] {
        try query(
            "SELECT * FROM permission_events WHERE environment_id = $1 AND revision = $2 ORDER BY event_id",
            [environment.raw, revision]
        ).rows.map { try PermissionEventRecord(row: $0, environment: environment) }
    }

    /// Deletes permission events older than `seconds` (at most `batch` rows)
    /// and raises each environment's floor to the newest revision it lost.
    /// Needs `becomeJanitor()`. Returns how many were deleted.
    public func prunePermissionEvents(olderThanSeconds seconds: Int64, batch: Int = 50_000) throws -> Int {
        Int(try query(
            """
            WITH pruned AS (
                DELETE FROM permission_events WHERE ctid IN (
                    SELECT ctid FROM permission_events
                    WHERE created_at < now() - make_interval(secs => $1) AND revision IS NOT NULL LIMIT $2)
                RETURNING environment_id, revision
            ), floors AS (
                INSERT INTO permission_event_floors (environment_id, pruned_through)
                SELECT environment_id, max(revision) FROM pruned GROUP BY environment_id
                ON CONFLICT (environment_id) DO UPDATE
                    SET pruned_through = greatest(permission_event_floors.pruned_through, excluded.pruned_through)
            )
            SELECT count(*) AS n FROM pruned
            """,
            [seconds, batch]
        ).first!.int64("n"))
    }
}
