import Foundation
import Synchronization
import PortierDomain
import Testing

@Suite("Emails and domains (R-ENV-5)")
struct EmailAddressTests {
    @Test("R-ENV-5: emails compare case-insensitively and trimmed")
    func normalisation() throws {
        let a = try EmailAddress("  Alice@ACME.Test\n")
        #expect(a.normalized == "alice@acme.test")
        #expect(a.display == "Alice@ACME.Test")
        #expect(a.domain == "acme.test")
        #expect(try EmailAddress("alice@acme.test") == EmailAddress("alice@acme.test"))
        #expect(a.normalized == (try EmailAddress("ALICE@acme.TEST")).normalized)
    }

    @Test("R-ENV-5: invalid emails are rejected with a clear bad_request", arguments: [
        "", "   ", "alice", "alice@", "@acme.test", "alice@@acme.test", "a@b@acme.test", "alice@acme",
        "alice@acme..test", "alice@-acme.test", "alice@acme-.test", ".alice@acme.test", "alice.@acme.test",
        "al..ice@acme.test", "al ice@acme.test", "alice@acme.t", "alice@acme.123", "\"quoted\"@acme.test",
        "alice@ac_me.test", "ålice@acme.test",
    ])
    func invalid(_ raw: String) {
        #expect {
            _ = try EmailAddress(raw)
        } throws: { error in
            guard let e = error as? InvalidInput else { return false }
            return !e.message.isEmpty
        }
    }

    @Test("R-ENV-5: common valid shapes are accepted", arguments: [
        "alice@acme.test", "a.b+tag@sub.acme.co.uk", "x_y-z@a-b.example", "o'neil@acme.test", "1@acme.nl",
    ])
    func valid(_ raw: String) throws {
        _ = try EmailAddress(raw)
    }

    @Test("R-ENV-5: a 255-character email is too long")
    func tooLong() {
        let local = String(repeating: "a", count: 64)
        let domain = String(repeating: "b", count: 63) + "." + String(repeating: "c", count: 63) + "." + String(repeating: "d", count: 60) + ".test"
        #expect(throws: InvalidInput.self) { _ = try EmailAddress(local + "@" + domain) }
    }
}

@Suite("Sign-up rules (R-ENV-2, R-ENV-3, R-ENV-4)")
struct SignupPlanTests {
    let shared = try! SharedMailDomains(additions: ["Corp-Mail.example"])

    @Test("R-ENV-2: an unclaimed company domain creates an environment claiming it")
    func newDomain() throws {
        #expect(SignupPlan.decide(email: try EmailAddress("a@acme.test"), claimedBy: nil, shared: shared) == .createEnvironment(claim: "acme.test"))
    }

    @Test("R-ENV-3: a claimed domain joins its environment")
    func claimedDomain() throws {
        #expect(SignupPlan.decide(email: try EmailAddress("b@acme.test"), claimedBy: 7, shared: shared) == .joinEnvironment(7))
    }

    @Test("R-ENV-4: shared mail domains never claim, even if claimed by mistake", arguments: [
        "gmail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com", "icloud.com", "corp-mail.example",
    ])
    func sharedDomains(_ domain: String) throws {
        let email = try EmailAddress("someone@\(domain.uppercased())")
        #expect(shared.isShared(email.domain))
        #expect(SignupPlan.decide(email: email, claimedBy: nil, shared: shared) == .createEnvironment(claim: nil))
        #expect(SignupPlan.decide(email: email, claimedBy: 3, shared: shared) == .createEnvironment(claim: nil))
    }

    @Test("R-ENV-4: the shipped list holds the free-mail and disposable providers the issue names", arguments: [
        "yahoo.fr", "gmx.at", "laposte.net", "libero.it", "t-online.de", "orange.fr", "telenet.be", "skynet.be",
        "qq.com", "mailinator.com", "yopmail.com", "gmail.com", "tiscali.nl",
    ])
    func listedProviders(_ domain: String) throws {
        let email = try EmailAddress("someone@\(domain)")
        #expect(SharedMailDomains.listed.count > 10_000)
        #expect(shared.reason(email.domain) == .listed)
        #expect(SignupPlan.decide(email: email, claimedBy: nil, shared: shared) == .createEnvironment(claim: nil))
    }

    @Test("R-ENV-4: subdomains of shared domains and public suffixes are never claimed; ordinary company domains are")
    func neverClaimed() throws {
        #expect(shared.reason("mail.gmail.com") == .subdomainOfListed)
        #expect(shared.reason("a.b.yopmail.com") == .subdomainOfListed)
        for suffix in ["co.uk", "github.io", "blogspot.com", "com.au"] { #expect(shared.reason(suffix) == .publicSuffix, "\(suffix)") }
        for company in ["acme.test", "acme.co.uk", "someone.github.io", "gmail.com.acme.test"] { #expect(shared.reason(company) == nil, "\(company)") }
    }

    @Test("R-ENV-4: configuration adds domains and marks listed ones as not shared")
    func configuredList() throws {
        let configured = try SharedMailDomains(additions: ["Corp-Mail.example"], notShared: ["facebook.com"])
        #expect(configured.isShared("corp-mail.example") && configured.isShared("x.corp-mail.example"))
        #expect(shared.isShared("facebook.com") && !configured.isShared("facebook.com"))
    }

    @Test("R-ENV-9: a Unicode domain and its A-label spelling are one address, kept in ASCII")
    func internationalDomains() throws {
        let unicode = try EmailAddress("Anna@Café.NL")
        let ascii = try EmailAddress("anna@xn--caf-dma.nl")
        #expect(unicode == ascii && unicode.normalized == "anna@xn--caf-dma.nl" && unicode.domain == "xn--caf-dma.nl")
        #expect(unicode.display == "Anna@xn--caf-dma.nl")
        #expect(try Domain("CAFÉ.nl").name == "xn--caf-dma.nl")
        // Non-transitional processing: ß stays itself, distinct from ss.
        #expect(try Domain("faß.de").name == "xn--fa-hia.de")
        #expect(try Domain("faß.de").name != Domain("fass.de").name)
        #expect(try Domain("пример.рф").name == "xn--e1afmkfd.xn--p1ai")
        // ASCII domains are untouched by the mapping (existing rows stay valid).
        #expect(try EmailAddress("Bob@Acme.Test").display == "Bob@Acme.Test")
    }

    @Test("R-ENV-9: invalid internationalised domains and non-ASCII local parts are refused clearly", arguments: [
        "anna@xn--zz-.nl", "anna@☃.com", "anna@xn--a.nl", "änna@acme.test", "anna@café..nl",
    ])
    func invalidInternational(_ raw: String) {
        #expect {
            _ = try EmailAddress(raw)
        } throws: { error in
            guard let e = error as? InvalidInput else { return false }
            return (raw.hasPrefix("ä") ? e.message.contains("ASCII") : true)
        }
    }

    @Test("R-ENV-4: configured additions must be valid domains")
    func invalidAddition() {
        #expect(throws: InvalidInput.self) { _ = try SharedMailDomains(additions: ["not a domain"]) }
    }
}

@Suite("Administrator rules (R-USR-8, R-USR-9)")
struct AdministratorRuleTests {
    @Test("R-USR-8: taking administration from the last active administrator is refused")
    func lastAdministrator() {
        #expect(AdministratorRule.violatesLastAdministrator(activeAdministrators: 1, targetIsActiveAdministrator: true, losesAdministration: true))
        #expect(!AdministratorRule.violatesLastAdministrator(activeAdministrators: 2, targetIsActiveAdministrator: true, losesAdministration: true))
        #expect(!AdministratorRule.violatesLastAdministrator(activeAdministrators: 1, targetIsActiveAdministrator: false, losesAdministration: true))
        #expect(!AdministratorRule.violatesLastAdministrator(activeAdministrators: 1, targetIsActiveAdministrator: true, losesAdministration: false))
    }

    @Test("R-USR-9: exactly one administrator warns single_administrator")
    func warnings() {
        #expect(AdministratorRule.warnings(activeAdministrators: 1) == ["single_administrator"])
        #expect(AdministratorRule.warnings(activeAdministrators: 2).isEmpty)
        #expect(AdministratorRule.warnings(activeAdministrators: 0) == ["no_active_administrator"])
    }
}

@Suite("Identifiers and revision tokens")
struct IdentifierTests {
    @Test("ids carry their environment and round-trip")
    func scopedIDs() throws {
        let id = ScopedID(.user, environment: EnvironmentID(12), raw: 345)
        #expect(id.description == "usr_12_345")
        #expect(ScopedID("usr_12_345", kind: .user) == id)
        #expect(ScopedID("org_12_345", kind: .user) == nil)
        for bad in ["usr_12", "usr_0_1", "usr_-1_2", "usr_1_2_3", "usr_a_b", "", "usr__1"] {
            #expect(ScopedID(bad, kind: .user) == nil, "\(bad)")
        }
        #expect(EnvironmentID("env_9") == EnvironmentID(9))
        #expect(EnvironmentID("env_0") == nil)
    }

    @Test("a user reference is an id or an email; anything else is bad_request")
    func userReference() throws {
        #expect(try UserReference("usr_1_2", field: "user") == .id(ScopedID(.user, environment: EnvironmentID(1), raw: 2)))
        #expect(try UserReference("Bob@Acme.test", field: "user") == .email(try EmailAddress("bob@acme.test")))
        #expect(throws: InvalidInput.self) { _ = try UserReference("bob", field: "user") }
    }

    @Test("R-PRM-5: revision tokens round-trip")
    func revisionTokens() {
        let token = RevisionToken(environment: EnvironmentID(3), revision: 17)
        #expect(token.description == "env_3:17")
        #expect(RevisionToken("env_3:17") == token)
        #expect(RevisionToken("env_3") == nil)
        #expect(RevisionToken("env_3:-1") == nil)
    }
}

import PortierIndex

@Suite("Permission index memory budget")
struct PermissionIndexTests {
    func snapshot(_ env: Int64, users: Int) -> EnvironmentSnapshot {
        EnvironmentSnapshot(
            environment: EnvironmentID(env), revision: 1,
            users: (1...Int64(users)).map { IndexedUser(id: $0, role: .basic, status: .active, email: "u\($0)@x.test", name: "") },
            organisations: [], memberships: [], links: []
        )
    }

    @Test("over the budget, the least recently used environments are evicted first")
    func lru() {
        let index = PermissionIndex(budgetBytes: 3 * 100 * 256)
        for env in 1...3 { index.put(EnvironmentIndex(snapshot(Int64(env), users: 100))) }
        #expect(index.count == 3)
        _ = index.get(EnvironmentID(1))          // 2 is now the least recently used
        index.put(EnvironmentIndex(snapshot(4, users: 100)))
        #expect(index.get(EnvironmentID(2)) == nil)
        #expect(index.get(EnvironmentID(1)) != nil)
        #expect(index.get(EnvironmentID(4)) != nil)
        #expect(index.approximateBytes <= index.budgetBytes)
    }
}

@Suite("Index reads report the revision of their facts (R-PRM-5)")
struct IndexRevisionTests {
    @Test("R-PRM-5: a membership read while deltas are applied comes with the revision it was read at, never a later one")
    func factsAndRevisionTogether() {
        let env = EnvironmentID(7)
        let user = UserKey(environment: env, id: 1)
        let index = EnvironmentIndex(EnvironmentSnapshot(
            environment: env, revision: 0,
            users: [IndexedUser(id: 1, role: .basic, status: .active, email: "a@x.test", name: "")],
            organisations: [IndexedOrganisation(id: 1, name: "O", kvkNumber: nil, country: nil, status: .active)],
            memberships: [], links: []
        ))
        let rounds = 50_000
        let done = Atomic<Bool>(false)
        // Odd revisions have the membership, even ones do not.
        let writer = Thread {
            for r in 1...rounds {
                var delta = EnvironmentDelta(environment: env, fromRevision: Int64(r - 1), revision: Int64(r))
                delta.memberships[.init(organisation: 1, user: user)] = r % 2 == 1 ? .some(MemberFacts(role: .member, status: .active)) : .some(nil)
                index.apply(delta)
            }
            done.store(true, ordering: .releasing)
        }
        writer.start()
        var mismatches = 0, reads = 0
        while !done.load(ordering: .acquiring) {
            let (_, _, membership, token) = index.membershipFacts(organisation: 1, user: user)
            let revision = Int64(token.split(separator: ":").last!)!
            if (membership != nil) != (revision % 2 == 1) { mismatches += 1 }
            reads += 1
        }
        #expect(reads > 0)
        #expect(mismatches == 0, "\(mismatches) of \(reads) reads reported another moment's revision")
    }
}
