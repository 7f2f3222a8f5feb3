/// What a sign-up does, decided from the email and the current claim on its domain
/// (R-ENV-2, R-ENV-3, R-ENV-4, R-ENV-7).
public enum SignupPlan: Sendable, Equatable {
    /// A new environment; the user is its administrator. `claim` is the domain it
    /// claims (pending until someone on it activates), or nil for a shared domain.
    case createEnvironment(claim: String?)
    /// Join the environment that claims the domain, as `basic` with no memberships,
    /// and tell its administrators (R-ENV-8).
    case joinEnvironment(Int64)

    /// - Parameter claimedBy: the environment currently claiming the email's domain.
    public static func decide(email: EmailAddress, claimedBy: Int64?, shared: SharedMailDomains) -> SignupPlan {
        if shared.isShared(email.domain) { return .createEnvironment(claim: nil) }
        if let environment = claimedBy { return .joinEnvironment(environment) }
        return .createEnvironment(claim: email.domain)
    }
}

/// R-USR-8 as a pure rule: would this change leave no active administrator?
public enum AdministratorRule {
    /// - Parameters:
    ///   - activeAdministrators: active administrators before the change.
    ///   - targetIsActiveAdministrator: whether the target counts among them.
    ///   - losesAdministration: whether the change takes that away (demote, block, remove).
    public static func violatesLastAdministrator(
        activeAdministrators: Int, targetIsActiveAdministrator: Bool, losesAdministration: Bool
    ) -> Bool {
        targetIsActiveAdministrator && losesAdministration && activeAdministrators <= 1
    }

    /// R-USR-9: the warnings an environment reports for its administrator count.
    /// `no_active_administrator` is ours: a new environment before its first
    /// activation, or one where support must appoint someone (R-SUP-1).
    public static func warnings(activeAdministrators: Int) -> [String] {
        switch activeAdministrators {
        case 0: ["no_active_administrator"]
        case 1: ["single_administrator"]
        default: []
        }
    }
}
