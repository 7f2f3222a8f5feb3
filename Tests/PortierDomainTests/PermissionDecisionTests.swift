import PortierDomain
import Testing

/// `Permission.decide` over plain facts, no index and no database (docs/rules.md §7).
@Suite("Permission rule (§7, R-PRM-1…3, R-ORG-2)")
struct PermissionDecisionTests {
    static let env = EnvironmentID(1)
    static let administrator = PermissionFacts(user: (.administrator, .active, env), organisationEnvironment: env,
                                               membership: (.administrator, .active))

    @Test("R-ORG-2: on an inactive organisation every organisation permission is denied (organisation_inactive) but organisation.edit for environment administrators",
          arguments: Permission.allCases.filter { $0.rule.scope == .organisation })
    func inactiveOrganisation(_ permission: Permission) {
        var facts = Self.administrator
        facts.organisationActive = false
        let decision = permission.decide(facts)
        if permission == .organisationEdit {
            #expect(decision == .allow(.envAdministrator))
        } else {
            #expect(decision == .deny(.organisationInactive))
        }
        facts.organisationActive = true
        #expect(permission.decide(facts).allowed, "the same facts on an active organisation allow it")
    }

    @Test("R-PRM-1: a user who is not active holds nothing, whatever the organisation's state")
    func inactiveUserFirst() {
        var facts = Self.administrator
        facts.organisationActive = false
        facts.user = (.administrator, .blocked, Self.env)
        #expect(Permission.documentsView.decide(facts) == .deny(.blocked))
    }
}

@Suite("Readable names (R-SEC-3)")
struct DisplayNameTests {
    @Test("R-SEC-3: every control character and bidirectional formatting character is refused",
          arguments: Array(0x00...0x1F) + Array(0x7F...0x9F) + Array(0x202A...0x202E) + Array(0x2066...0x2069))
    func refused(_ code: Int) {
        let name = "A" + String(Unicode.Scalar(UInt32(code))!) + "B"
        #expect(throws: InvalidInput.self) { _ = try DisplayNames.validate(name, allowEmpty: false) }
    }

    @Test("R-SEC-3: other scripts and marks are kept; spaces are trimmed and folded")
    func kept() throws {
        #expect(try DisplayNames.validate("  Zoë   Ægir  ", allowEmpty: false) == "Zoë Ægir")
        #expect(try DisplayNames.validate("שרה כהן", allowEmpty: false) == "שרה כהן", "right-to-left letters are fine; only overrides are refused")
        #expect(try DisplayNames.validate("", allowEmpty: true) == "")
        #expect(throws: InvalidInput.self) { _ = try DisplayNames.validate("   ", allowEmpty: false) }
    }
}
