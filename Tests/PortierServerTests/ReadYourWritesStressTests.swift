import Foundation
import PortierClient
import PortierDomain
import PortierProtocol
import PortierTestSupport
import Testing

/// R-PRM-5 on one instance, on a busy machine: every flow, run concurrently
/// with a CPU hog, checked after every change by the very next
/// check and both lookups on another connection (an outside scenario once saw
/// the next lookup miss a partner organisation under such load: an index load
/// in flight during the commit).
@Suite("R-PRM-5: read-your-writes under load")
struct ReadYourWritesStressTests {
    static let flows = 4
    static let rounds = 8

    @Test("R-PRM-5: concurrent flows: the next check and lookups after each change see it, cross-environment ones included")
    func concurrentFlows() async throws {
        try await underLoad(hog: false)
    }

    @Test("R-PRM-5: the same with a CPU hog on every core", .enabled(if: cpuHogTests))
    func onBusyMachine() async throws {
        try await underLoad(hog: true)
    }

    func underLoad(hog: Bool) async throws {
        let cpu = hog ? CPUHog() : nil
        defer { cpu?.stop() }
        try await withServer { server in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for flow in 0..<Self.flows {
                    group.addTask { try await Self.flow(server, flow) }
                }
                try await group.waitForAll()
            }
        }
    }

    static func flow(_ server: TestServer, _ flow: Int) async throws {
        let writer = try await server.client()
        let readerClient = try await server.client()
        let s = Scenario(writer)
        for round in 0..<rounds {
            let tag = "f\(flow)r\(round)"
            let admin = try await s.environment("acme-\(tag).test").id
            try await s.environment("partner-\(tag).test")
            let partnerAdmin = "admin@partner-\(tag).test"
            let ptn = try await s.partners("admin@acme-\(tag).test", partnerAdmin)
            let org = try await s.organisation("Acme \(tag)", as: admin)
            let bob = try await s.member("bob@acme-\(tag).test", as: admin).id

            func step(_ op: String, _ params: JSONObject, as actor: String? = nil, user: String, expect: Bool) async throws {
                try await writer.call(op, actor: actor ?? admin, params: params)
                let (allowed, reason) = try await Scenario(readerClient).check(user, "documents.view", in: org)
                #expect(allowed == expect, "\(tag) after \(op): check → \(reason)")
                let orgs = try await readerClient.call("lookup.organisations", params: ["user": .string(user), "permission": "documents.view"])
                let ids = (orgs["organisations"]?.arrayValue ?? []).compactMap { $0.objectValue?["id"]?.stringValue ?? $0.stringValue }
                #expect(ids.contains(org) == expect, "\(tag) after \(op): lookup.organisations → \(ids)")
                let users = try await readerClient.call("lookup.users", params: ["organisation": .string(org), "permission": "documents.view"])
                let userIDs = (users["users"]?.arrayValue ?? []).compactMap { $0.objectValue?["id"]?.stringValue ?? $0.stringValue }
                let userID = user.contains("@") ? nil : user
                if let userID { #expect(userIDs.contains(userID) == expect, "\(tag) after \(op): lookup.users → \(userIDs)") }
            }
            try await step("member.add", ["organisation": .string(org), "user": .string(bob)], user: bob, expect: true)
            try await step("user.block", ["user": .string(bob)], user: bob, expect: false)
            try await step("user.unblock", ["user": .string(bob)], user: bob, expect: true)
            try await step("member.remove", ["organisation": .string(org), "user": .string(bob)], user: bob, expect: false)
            let partnerUser = try await writer.call("user.get", actor: partnerAdmin, params: ["user": .string(partnerAdmin)])["user"]!.objectValue!.id
            try await step("member.add", ["organisation": .string(org), "user": .string(partnerUser)], user: partnerUser, expect: false)
            let request = try await s.inbox(partnerAdmin).first { $0["kind"] == "membership" }!
            try await step("inbox.accept", ["request": request["id"]!], as: partnerAdmin, user: partnerUser, expect: true)
            try await step("partnership.end", ["partnership": .string(ptn)], user: partnerUser, expect: false)
        }
        await writer.close()
        await readerClient.close()
    }
}
