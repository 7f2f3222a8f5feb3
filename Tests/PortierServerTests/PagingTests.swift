import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

/// §11: every list is paged with `limit` and `cursor`, returns `next_cursor`
/// exactly when there is more, keeps a stable order, refuses a malformed cursor,
/// and no cursor reaches rows outside the request's scope.
@Suite("§11: paging of every list")
struct PagingTests {
    struct Walk {
        var ids: [String] = []
        var pages = 0
    }

    /// Follows `next_cursor` with `limit` 2; returns every row's id in order.
    func walk(_ client: PortierClient, _ op: String, actor: String?, _ params: JSONObject, _ key: String, limit: Int64 = 2) async throws -> Walk {
        var walk = Walk()
        var cursor: String?
        repeat {
            var p = params
            p["limit"] = .int(limit)
            if let cursor { p["cursor"] = .string(cursor) }
            let page = try await client.call(op, actor: actor, params: p)
            let rows = page[key]?.arrayValue ?? []
            #expect(rows.count <= Int(limit), "\(op): page larger than the limit")
            walk.ids += rows.compactMap { $0.objectValue?["id"]?.stringValue ?? $0.objectValue?["user"]?.stringValue }
            walk.pages += 1
            cursor = page["next_cursor"]?.stringValue
            if cursor != nil { #expect(rows.count == Int(limit), "\(op): next_cursor on a short page") }
        } while cursor != nil && walk.pages < 1000
        return walk
    }

    /// Every row of the list in one page.
    func all(_ client: PortierClient, _ op: String, actor: String?, _ params: JSONObject, _ key: String) async throws -> [String] {
        var p = params
        p["limit"] = 1000
        let page = try await client.call(op, actor: actor, params: p)
        #expect(page["next_cursor"] == nil, "\(op): next_cursor although everything fitted")
        return (page[key]?.arrayValue ?? []).compactMap { $0.objectValue?["id"]?.stringValue ?? $0.objectValue?["user"]?.stringValue }
    }

    @Test("§11: every list walked two rows at a time gives every row once, in the one-page order, over more than two pages; a malformed cursor is bad_request")
    func everyList() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let alice = try await s.environment("pages.test").id
            var orgs: [String] = []
            for i in 0..<5 { orgs.append(try await s.organisation("Pages \(i) BV", as: alice)) }
            var members: [String] = []
            for i in 0..<5 {
                let user = try await s.member("m\(i)@pages.test", as: alice).id
                members.append(user)
                try await client.call("member.add", actor: alice, params: ["organisation": .string(orgs[0]), "user": .string(user)])
            }
            // Bob is a member of every organisation (lookup.organisations).
            for org in orgs.dropFirst() { try await client.call("member.add", actor: alice, params: ["organisation": .string(org), "user": .string(members[0])]) }
            // Five partner environments; Pat (one of them) gets five membership requests.
            var partnerAdmins: [String] = []
            for i in 0..<5 {
                partnerAdmins.append(try await s.environment("partner\(i).pages-test.test").id)
                _ = try await s.partners("admin@pages.test", "admin@partner\(i).pages-test.test")
            }
            let pat = partnerAdmins[0]
            for org in orgs { try await client.call("member.add", actor: alice, params: ["organisation": .string(org), "user": .string(pat)]) }

            let lists: [(String, String?, JSONObject, String)] = [
                ("user.list", alice, [:], "users"),
                ("organisation.list", alice, [:], "organisations"),
                ("member.list", alice, ["organisation": .string(orgs[0])], "memberships"),
                ("partnership.list", alice, [:], "partnerships"),
                ("inbox.list", pat, [:], "requests"),
                ("audit.list", alice, [:], "events"),
                ("lookup.organisations", nil, ["user": .string(members[0]), "permission": "documents.view"], "organisations"),
                ("lookup.users", nil, ["organisation": .string(orgs[0]), "permission": "documents.view"], "users"),
                ("outbox.list", nil, [:], "messages"),
            ]
            for (op, actor, params, key) in lists {
                let whole = try await all(client, op, actor: actor, params, key)
                let walked = try await walk(client, op, actor: actor, params, key)
                #expect(whole.count >= 5, "\(op): \(whole.count) rows")
                #expect(walked.pages > 2, "\(op): \(walked.pages) pages")
                #expect(walked.ids == whole, "\(op): paged rows differ from the one-page list")
                #expect(Set(walked.ids).count == walked.ids.count, "\(op): a row twice")
                // Without limit: the default page (100), here everything.
                let plain = try await client.call(op, actor: actor, params: params)
                #expect(plain[key]?.arrayValue?.count == min(whole.count, 100) && (whole.count > 100) == (plain["next_cursor"] != nil), "\(op)")
                for bad: JSONValue in ["nonsense", "env_1", 17, ""] {
                    var p = params
                    p["cursor"] = bad
                    #expect(try await client.send(op, actor: actor, params: p).errorCode == .badRequest, "\(op) cursor \(bad)")
                }
                for bad: JSONValue in [0, 1001, -1, "10"] {
                    var p = params
                    p["limit"] = bad
                    #expect(try await client.send(op, actor: actor, params: p).errorCode == .badRequest, "\(op) limit \(bad)")
                }
            }
        }
    }

    @Test("§11: a cursor taken from another tenant's list reaches nothing outside the request's scope")
    func forgedCursor() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let alice = try await s.environment("mine.test").id
            for i in 0..<3 { try await s.invite("u\(i)@mine.test", as: alice) }
            let mallory = try await s.environment("theirs.test").id
            for i in 0..<3 { try await s.invite("t\(i)@theirs.test", as: mallory) }
            let theirs = try await all(client, "user.list", actor: mallory, [:], "users")
            let mine = try await all(client, "user.list", actor: alice, [:], "users")
            let myEnvironment = ScopedID(alice, kind: .user)!.environment
            // Each of the other tenant's ids as a cursor: only my rows come back.
            for cursor in theirs + ["usr_999999_1"] {
                let page = try await client.call("user.list", actor: alice, params: ["cursor": .string(cursor), "limit": 1000])
                let ids = page["users"]?.arrayValue?.compactMap { $0.objectValue?["id"]?.stringValue } ?? []
                #expect(ids.allSatisfy { ScopedID($0, kind: .user)?.environment == myEnvironment }, "cursor \(cursor): \(ids)")
                #expect(Set(ids).isSubset(of: Set(mine)))
            }
            let org = try await s.organisation("Theirs BV", as: mallory)
            let foreign = try await client.send("member.list", actor: alice, params: ["organisation": .string(org), "cursor": .string(theirs[0])])
            #expect(foreign.errorCode == .notFound || foreign.errorCode == .forbidden, "\(foreign)")
        }
    }
}
