/// What `portier-load seed` creates: totals and the random seed. Everything else
/// (each environment's size, every user's role and status, who is member of
/// what, the partnerships) follows from these by `LoadPlan`.
public struct LoadShape: Codable, Sendable, Equatable {
    public var environments: Int
    public var users: Int
    public var organisations: Int
    public var memberships: Int
    public var seed: UInt64
    /// Share of environments that are accountants' (many organisations, partnerships).
    public var accountantShare: Double
    /// Partnerships each accountant's environment has with client environments.
    public var partnershipsPerAccountant: Int

    public init(environments: Int, users: Int, organisations: Int, memberships: Int, seed: UInt64 = 1,
                accountantShare: Double = 0.05, partnershipsPerAccountant: Int = 3) {
        self.environments = environments
        self.users = users
        self.organisations = organisations
        self.memberships = memberships
        self.seed = seed
        self.accountantShare = accountantShare
        self.partnershipsPerAccountant = partnershipsPerAccountant
    }

    /// The target scale: 10,000 / 1,000,000 / 100,000 / 3,000,000 (seeds in minutes).
    public static let full = LoadShape(environments: 10_000, users: 1_000_000, organisations: 100_000, memberships: 3_000_000)
    /// A first try: 50 / 5,000 / 500 / 15,000, the same proportions (seeds in seconds).
    public static let small = LoadShape(environments: 50, users: 5_000, organisations: 500, memberships: 15_000)
}

/// Where the seeded ids start (the database may hold other data already).
public struct IDBase: Codable, Sendable, Equatable {
    public var environment: Int64
    public var user: Int64
    public var organisation: Int64
    public var partnership: Int64
    public init(environment: Int64 = 0, user: Int64 = 0, organisation: Int64 = 0, partnership: Int64 = 0) {
        self.environment = environment
        self.user = user
        self.organisation = organisation
        self.partnership = partnership
    }
}

/// The file `seed` writes and `run` reads: enough to rebuild the plan exactly.
public struct LoadManifest: Codable, Sendable, Equatable {
    public var shape: LoadShape
    public var base: IDBase
    /// The password every seeded active user has (so a run may log in).
    public var password: String
    public init(shape: LoadShape, base: IDBase, password: String) {
        self.shape = shape
        self.base = base
        self.password = password
    }
}
