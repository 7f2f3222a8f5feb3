import PortierDomain
import PortierPasswords
import PortierProtocol

/// Settings of the operations (limits, lifetimes, lists), independent of transport.
public struct ServiceConfiguration: Sendable {
    /// How long activation and verification tokens live (R-USR-2; default 7 days).
    public var tokenLifetimeSeconds: Int64
    /// How long a new environment waits for its first activation before it is
    /// deleted and its domain claim freed (R-ENV-7; default: the token lifetime).
    public var activationWindowSeconds: Int64
    /// Shared mail domains, built-in plus configured additions (R-ENV-4).
    public var sharedMailDomains: SharedMailDomains
    /// Invitations one environment may send per hour (R-USR-13; default 200).
    public var invitationsPerHour: Int
    /// Estimated memory the in-memory permission indexes may use before the least
    /// recently used environments are evicted (default 1 GiB).
    public var indexBudgetBytes: Int
    /// scrypt cost for stored passwords.
    public var passwordHashing: PasswordHasher.Parameters
    /// Frame limits reported by `hello`.
    public var frameLimits: FrameLimits
    /// Bound on in-flight requests per connection, reported by `hello`.
    public var maximumInFlightPerConnection: Int
    /// The server version string reported by `hello`.
    public var version: String
    /// Failed logins per address and client within the window before that
    /// client is refused for the address (R-USR-4; default 10).
    public var loginFailuresPerClient = 10
    /// Failed logins per address within the window before every client is
    /// refused for it (default 100).
    public var loginFailuresPerAddress = 100
    /// The throttling window, in seconds (default 15 minutes).
    public var loginWindowSeconds: Int64 = 900
    /// Password checks one connection-and-client key may have waiting for the
    /// hasher, and all together; past either, `overloaded` (R-SEC-2).
    public var hashQueuePerKey = 8
    public var hashQueueTotal = 256
    /// Password hashes computed at once (default 2, the hasher's threads; 1 was
    /// measured worse under a flood: refused requests come back faster).
    public var hashSlots = 2
    /// How long a refused credential request (`user.activate`,
    /// `user.authenticate`, password reset and change: wrong token or
    /// password, `rate_limited`, `overloaded`) waits before its answer goes
    /// out once its connection has used up its refusal burst (default 1 s). It
    /// holds no hasher turn and no database connection, only the connection's
    /// in-flight slot: a client that retries at once is paced to its in-flight
    /// bound per second instead of turning cheap refusals into a CPU flood
    /// that starves other callers' hashes (R-SEC-2).
    public var credentialRefusalDelay: Duration = .seconds(1)
    /// Refusals one connection gets answered at once before the delay applies:
    /// a bucket of `refusalBurst` refilled at `refusalsPerSecond`. A front end's
    /// occasional wrong passwords never wait; a flood does.
    public var refusalBurst = 32
    public var refusalsPerSecond = 16.0
    /// Messages one sender (an environment, or the person's own sign-up or
    /// password reset) may cause to one address in an hour (R-USR-16; default
    /// 5); past it, `rate_limited`.
    public var messagesPerRecipientPerHour = 5
    /// Messages all environments together may cause to one address in an hour:
    /// four times the per-sender cap (default 20). The person's own sign-up
    /// and reset messages are not counted in it, nor refused by it.
    public var messagesPerRecipientTotalPerHour: Int { 4 * messagesPerRecipientPerHour }
    /// `domain_join` notices an environment's administrators get in an hour
    /// (default 10 joins); past it, one summary notice an hour instead.
    public var domainJoinNoticesPerHour = 10
    /// How long a password reset token lives (R-USR-14; default 1 hour).
    public var passwordResetLifetimeSeconds: Int64 = 3600
    /// When `user.password.forgot` answers (default 250 ms), whatever the
    /// address: its work (a lookup, for a real user a token and a message)
    /// runs on its own, so the answer's timing cannot tell a user's address
    /// from an unknown one (R-USR-14). Zero (tests): when the work is done.
    public var passwordForgotFloor: Duration = .milliseconds(250)
    /// How long the permission event log keeps events for `watch` to replay
    /// (R-WAT-1; default 24 hours). A watch resuming from an older revision
    /// gets `resync_required`. Pruned by the maintenance pass, once a minute.
    public var watchHistorySeconds: Int64 = 24 * 3600
    /// Watches one connection may hold (reported by `hello`; default 8).
    public var watchesPerConnection = 8
    /// Watches this instance holds in all (default 10,000); past it, `overloaded`.
    public var watchesTotal = 10_000
    /// Test only: operations wait at their `PausePoint`s while a test holds the
    /// point's advisory lock (forced interleavings, R-SEC-4). Off: no cost.
    public var pausePoints = false

    public init(
        tokenLifetimeSeconds: Int64 = 7 * 24 * 3600,
        activationWindowSeconds: Int64? = nil,
        sharedMailDomains: SharedMailDomains = try! SharedMailDomains(),
        invitationsPerHour: Int = 200,
        indexBudgetBytes: Int = 1 << 30,
        passwordHashing: PasswordHasher.Parameters = .default,
        frameLimits: FrameLimits = FrameLimits(),
        maximumInFlightPerConnection: Int = 128,
        version: String = PortierVersion.current
    ) {
        self.tokenLifetimeSeconds = tokenLifetimeSeconds
        self.activationWindowSeconds = activationWindowSeconds ?? tokenLifetimeSeconds
        self.sharedMailDomains = sharedMailDomains
        self.invitationsPerHour = invitationsPerHour
        self.indexBudgetBytes = indexBudgetBytes
        self.passwordHashing = passwordHashing
        self.frameLimits = frameLimits
        self.maximumInFlightPerConnection = maximumInFlightPerConnection
        self.version = version
    }
}

/// The version of this build.
/// The service settings a SIGHUP reload may change (`PortierService.reconfigure`).
public struct ReloadableSettings: Sendable {
    public var sharedMailDomains: SharedMailDomains
    public var tokenLifetimeSeconds: Int64
    public var passwordResetLifetimeSeconds: Int64
    public var invitationsPerHour: Int
    public var messagesPerRecipientPerHour: Int
    public var domainJoinNoticesPerHour: Int
    public var credentialRefusalDelay: Duration
    public var frameLimits: FrameLimits
    public var maximumInFlightPerConnection: Int
    public var watchHistorySeconds: Int64

    /// The reloadable part of `c`.
    public init(_ c: ServiceConfiguration) {
        frameLimits = c.frameLimits
        maximumInFlightPerConnection = c.maximumInFlightPerConnection
        sharedMailDomains = c.sharedMailDomains
        tokenLifetimeSeconds = c.tokenLifetimeSeconds
        passwordResetLifetimeSeconds = c.passwordResetLifetimeSeconds
        invitationsPerHour = c.invitationsPerHour
        messagesPerRecipientPerHour = c.messagesPerRecipientPerHour
        domainJoinNoticesPerHour = c.domainJoinNoticesPerHour
        credentialRefusalDelay = c.credentialRefusalDelay
        watchHistorySeconds = c.watchHistorySeconds
    }

    func apply(to c: inout ServiceConfiguration) {
        // The activation window follows the token lifetime unless it was set apart.
        if c.activationWindowSeconds == c.tokenLifetimeSeconds { c.activationWindowSeconds = tokenLifetimeSeconds }
        c.sharedMailDomains = sharedMailDomains
        c.tokenLifetimeSeconds = tokenLifetimeSeconds
        c.passwordResetLifetimeSeconds = passwordResetLifetimeSeconds
        c.invitationsPerHour = invitationsPerHour
        c.messagesPerRecipientPerHour = messagesPerRecipientPerHour
        c.domainJoinNoticesPerHour = domainJoinNoticesPerHour
        c.credentialRefusalDelay = credentialRefusalDelay
        c.frameLimits = frameLimits
        c.maximumInFlightPerConnection = maximumInFlightPerConnection
        c.watchHistorySeconds = watchHistorySeconds
    }
}

public enum PortierVersion {
    public static let current = "0.1.0"
}
