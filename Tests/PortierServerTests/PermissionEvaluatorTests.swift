import PortierClient
import PortierDomain
import PortierIndex
import PortierProtocol
@testable import PortierService
import PortierStorage
import PortierTestSupport
import Testing

/// The one permission evaluator over its two fact sources (issue 15): the
/// in-memory index and SQL must give the same answers on the whole §7 matrix,
/// for checks and both lookups, page by page. Driven without a socket.
@Suite("One permission evaluator, two fact sources")
struct PermissionEvaluatorTests {
    @Test("R-PRM-1…4, R-PRM-5: index facts and SQL facts agree on every role × status × membership × permission, on lookups and their pages, and both agree with docs/rules.md §7")
    func indexAndSQLAgree() async throws {
        try await withClient { server, client in
            let (cases, org, partnerEnvironment) = try await PermissionMatrixTests.arrange(server, client)
            let service = server.service
            // The cases were written behind the index's back: load both environments afresh.
            for environment in [org.environment, partnerEnvironment] {
                service.permissionIndex.remove(environment)
                #expect(try await service.indexes.environment(environment) != nil)
            }
            let unknownOrganisation = ScopedID(.organisation, environment: org.environment, raw: 999_999)
            var questions: [(PermissionMatrixTests.Case?, CheckQuestion)] = []
            for c in cases + [PermissionMatrixTests.Case(partner: false, role: "", status: "", membership: .none, id: "usr_\(org.environment.raw)_999999")] {
                for permission in Permission.allCases {
                    for organisation in [org, unknownOrganisation] {
                        var params: JSONObject = ["user": .string(c.id), "permission": .string(permission.rawValue)]
                        if permission.rule.scope == .organisation { params["organisation"] = .string(organisation.description) }
                        questions.append((c.role.isEmpty ? nil : c, try CheckQuestion(params)))
                    }
                }
            }
            @Sendable func key(_ q: CheckQuestion) -> UserKey { guard case .id(let id) = q.user else { fatalError("ids only") }; return id.userKey }

            var indexFacts = IndexFacts(service.permissionIndex)
            let fromIndex = try questions.map { try PermissionEvaluator.decide($0.1, user: key($0.1), in: &indexFacts) }
            #expect(!indexFacts.incomplete)
            let asked = questions.map(\.1)
            let fromSQL = try await service.pool.snapshot(environments: []) { tx in
                var facts = SQLFacts(tx)
                return try asked.map { try PermissionEvaluator.decide($0, user: key($0), in: &facts) }
            }
            #expect(fromIndex.count == fromSQL.count)
            for ((c, question), (a, b)) in zip(questions, zip(fromIndex, fromSQL)) {
                #expect(a == b, "\(c.map(\.description) ?? "unknown user") \(question.permission.rawValue) in \(question.organisation?.description ?? "-"): index \(a), SQL \(b)")
                guard let c else { #expect(a == .deny(.unknownUser)); continue }
                if question.organisation == unknownOrganisation, c.status == "active" { #expect(a == .deny(.unknownOrganisation)) }
                if question.organisation != unknownOrganisation { #expect(a.allowed == PermissionMatrixTests.expected(question.permission.rawValue, c), "\(c) \(question.permission)") }
            }

            // Lookups, read page by page from both sources.
            for permission in Permission.allCases where permission.rule.scope == .organisation {
                for c in cases {
                    let user = ScopedID(c.id, kind: .user)!.userKey
                    var cursor: ScopedID?
                    var viaIndex: [ScopedID] = []
                    var viaSQL: [ScopedID] = []
                    repeat {
                        var params: JSONObject = ["limit": 1]
                        if let cursor { params["cursor"] = .string(cursor.description) }
                        let page = try PageRequest(params, kind: .organisation)
                        var facts = IndexFacts(service.permissionIndex)
                        let a = try PermissionEvaluator.organisations(of: user, holding: permission, page: page, in: &facts)
                        let b = try await service.pool.snapshot(environments: []) { tx in
                            var facts = SQLFacts(tx)
                            return try PermissionEvaluator.organisations(of: user, holding: permission, page: page, in: &facts)
                        }
                        #expect(a == b, "\(c) \(permission): index \(a), SQL \(b)")
                        viaIndex += a.prefix(1)
                        viaSQL += b.prefix(1)
                        cursor = a.count > 1 ? a[0] : nil
                    } while cursor != nil
                    #expect(viaIndex == viaSQL)
                    // The organisation is in the list exactly when `check` allows it.
                    let allowed = PermissionMatrixTests.expected(permission.rawValue, c)
                    #expect(viaIndex.contains(org) == allowed, "\(c) \(permission)")
                }
                var cursor: ScopedID?
                var viaIndex: [UserKey] = []
                repeat {
                    var params: JSONObject = ["limit": 3]
                    if let cursor { params["cursor"] = .string(cursor.description) }
                    let page = try PageRequest(params, kind: .user)
                    var facts = IndexFacts(service.permissionIndex)
                    let a = try PermissionEvaluator.users(of: org, holding: permission, page: page, in: &facts)
                    let b = try await service.pool.snapshot(environments: []) { tx in
                        var facts = SQLFacts(tx)
                        return try PermissionEvaluator.users(of: org, holding: permission, page: page, in: &facts)
                    }
                    #expect(a == b, "users \(permission): index \(a), SQL \(b)")
                    viaIndex += a.prefix(3)
                    cursor = a.count > 3 ? a[2].scopedID : nil
                } while cursor != nil
                // Every case the matrix allows, and no other, is listed (the environment's own
                // administrator who created the organisation is listed too).
                let expected = Set(cases.filter { PermissionMatrixTests.expected(permission.rawValue, $0) }.map { ScopedID($0.id, kind: .user)!.userKey })
                #expect(expected.isSubset(of: Set(viaIndex)), "\(permission)")
                #expect(Set(viaIndex).subtracting(expected).allSatisfy { $0.environment == org.environment }, "\(permission)")
                #expect(viaIndex == viaIndex.sorted(), "pages in id order")
                #expect(try PermissionEvaluator.users(of: unknownOrganisation, holding: permission, page: PageRequest([:], kind: .user), in: &indexFacts).isEmpty)
            }
        }
    }
}
