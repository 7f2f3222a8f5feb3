/// Named points inside operations where a test can hold a transaction, to force
/// the interleaving of two concurrent requests (R-SEC-4). Only when the service
/// runs with `pausePoints` on (tests): then the operation takes a transaction-
/// scoped advisory lock at the point, and a test that holds that lock on its own
/// connection keeps the operation waiting there until it lets go. Off (the
/// default and in production) nothing is run: no statement, no cost.
public enum PausePoint: String, Sendable, CaseIterable {
    /// `member.add`: the user was found under their environment's lock (and
    /// for a partner user, the live partnership checked); nothing written yet.
    case memberAddUserChecked = "member.add/user-checked"
    /// `inbox.accept` of a membership request: the partnership was checked.
    case inboxAcceptPartnershipChecked = "inbox.accept/partnership-checked"
    /// `partnership.end`: both sides' rows are locked, memberships not yet ended.
    case partnershipEndLocked = "partnership.end/locked"
    /// `user.set_role`, `user.block`, `user.remove`: the last-administrator rule
    /// passed for an active administrator, the change not yet written.
    case lastAdministratorChecked = "last-administrator/checked"
    /// `user.remove`: the environment and the user's row are locked, nothing deleted yet.
    case userRemoveLocked = "user.remove/locked"
    /// The cleanup of an unactivated environment: locked and found expired, not yet deleted.
    case purgeChecked = "purge/checked"
    /// `user.activate`: the environment is locked and the token checked.
    case activationChecked = "user.activate/checked"
    /// `watch`: the watched environments' revisions were read; the watch has
    /// not joined the feed yet (R-WAT-1).
    case watchPositionsRead = "watch/positions-read"

    /// The advisory lock's two keys: a namespace ("port") and the point.
    public var keys: (Int32, Int32) { (0x706F_7274, Int32(Self.allCases.firstIndex(of: self)! + 1)) }
}

extension Transaction {
    /// Waits at `point` while a test holds its advisory lock (see `PausePoint`).
    public func pause(at point: PausePoint) throws {
        let (namespace, key) = point.keys
        try query("SELECT pg_advisory_xact_lock($1::int4, $2::int4)", [Int64(namespace), Int64(key)])
    }
}
