import PortierClient
import PortierProtocol
import PortierTestSupport
import Testing

/// R-ORG-2 (inactive organisations grant nothing) and R-USR-16 (a membership
/// request is never refused for the mail cap; its notices are coalesced).
@Suite("R-ORG-2, R-USR-16: inactive organisations, coalesced membership notices")
struct LifecycleRuleTests {
    @Test("R-ORG-2: an inactive organisation grants nothing on documents or members, from the index and from SQL alike; its environment administrators can still edit it")
    func inactiveOrganisationGrantsNothing() async throws {
        try await withClient { _, client in
            let s = Scenario(client)
            let admin = try await s.environment("acme.test")
            let org = try await s.organisation("Acme BV", as: admin.id, activate: false)
            for consistency: Consistency? in [nil, .full] {
                for permission in ["documents.view", "documents.send", "organisation.view", "members.manage"] {
                    let params: JSONObject = ["user": .string(admin.id), "permission": .string(permission), "organisation": .string(org)]
                    let r = try await client.call("check", params: params, consistency: consistency)
                    #expect(r["allowed"] == false, "\(permission) on an inactive organisation (\(consistency.map { "\($0)" } ?? "index"))")
                    #expect(r["reason"] == "organisation_inactive", "\(permission)")
                }
                let edit = try await s.check(admin.id, "organisation.edit", in: org)
                #expect(edit == (true, "env_administrator"), "environment administrators edit and activate it")
            }
            // Its members see nothing and manage nothing while it is inactive; administrators still see it.
            let second = try await s.member("second@acme.test", role: "administrator", as: admin.id)
            let basic = try await s.member("basic@acme.test", as: admin.id)
            for op in ["member.set_role", "member.remove"] {
                var params: JSONObject = ["organisation": .string(org), "user": .string(admin.id)]
                if op == "member.set_role" { params["role"] = "member" }
                let reply = try await client.send(op, actor: second.id, params: params)
                #expect(reply.errorCode == .invalidState, "\(op) on an inactive organisation")
            }
            #expect(try await client.send("organisation.get", actor: second.id, params: ["organisation": .string(org)]).errorCode == nil)
            #expect(try await client.send("organisation.get", actor: basic.id, params: ["organisation": .string(org)]).errorCode == .forbidden)
            let lookup = try await client.call("lookup.organisations", params: ["user": .string(admin.id), "permission": "documents.view"])
            #expect(lookup["organisations"]?.arrayValue?.isEmpty == true, "a lookup lists no inactive organisation")
            let users = try await client.call("lookup.users", params: ["organisation": .string(org), "permission": "members.manage"])
            #expect(users["users"]?.arrayValue?.isEmpty == true)
            try await client.call("organisation.activate", actor: admin.id, params: ["organisation": .string(org)])
            #expect(try await s.check(admin.id, "documents.view", in: org) == (true, "org_administrator"), "the creator is its organisation administrator once it is active")
            let after = try await client.call("lookup.organisations", params: ["user": .string(admin.id), "permission": "documents.view"])
            #expect(after["organisations"]?.arrayValue?.compactMap { $0.objectValue?["id"] } == [.string(org)])
        }
    }

    @Test("R-USR-16: a partner's user added to 20 organisations in a minute gets 20 requests in the inbox and few mails")
    func membershipRequestsAreNeverRefused() async throws {
        try await withClient(configure: { _, settings in settings.messagesPerRecipientPerHour = 5 }) { _, client in
            let s = Scenario(client)
            let acme = try await s.environment("acme.test")
            let bert = try await s.environment("bookkeepers.test")
            try await s.partners(acme.id, "admin@bookkeepers.test")
            var organisations: [String] = []
            for i in 0..<20 { organisations.append(try await s.organisation("Client \(i) BV", as: acme.id)) }
            for org in organisations {
                let reply = try await client.send("member.add", actor: acme.id, params: ["organisation": .string(org), "user": .string(bert.id), "role": "member"])
                #expect(reply.errorCode == nil, "never refused for the mail cap")
            }
            let inbox = try await client.call("inbox.list", actor: bert.id, params: ["limit": 100])
            let requests = inbox["requests"]?.arrayValue?.filter { $0.objectValue?["kind"] == "membership" } ?? []
            #expect(requests.count == 20, "every request lands in the inbox")
            let outbox = try await client.call("outbox.list", params: ["limit": 1000])
            let mails = (outbox["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
                .filter { $0["to"] == .string("admin@bookkeepers.test") && $0["kind"] == "membership_request" }
            let summaries = mails.filter { $0["details"]?.objectValue?["coalesced"] == true }
            #expect(summaries.count == 1, "one summary for the hour")
            #expect(mails.count <= 5, "the rest coalesced: \(mails.count) mails")
        }
    }
}
