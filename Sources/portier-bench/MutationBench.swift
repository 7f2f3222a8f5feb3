import ArgumentParser
import Foundation
import NIOCore
import PortierProtocol

/// Changes at the speed of PostgreSQL? `member.set_role` (and friends) on the
/// seeded data, each connection with one request in flight, as in the issue's
/// measurement: replies per second and latency percentiles, as JSON.
///
/// Every request really writes: each connection owns the environments
/// `e ≡ c (mod connections)` and remembers the roles it set, so it always asks
/// for the other role (a request for the current role changes nothing and
/// would flatter the numbers).
struct Mutations: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mutations, one in flight per connection: replies/s and latency, as JSON.")
    @Option var socket: String
    @Option var connections = 4
    @Option var seconds = 5.0
    @Option(help: "member.set_role, user.set_role, member.add-remove (adds a user to an organisation it is not in, then removes it again), or user.invite-remove (invites a new address, then removes that user).") var op = "member.set_role"
    @Option(help: "Requests per second per connection (0: as fast as replies come).") var rate = 0.0
    @OptionGroup var shape: DataShape

    func run() throws {
        let latencies = LatencyLog(connections)
        let ends = LatencyLog(connections)  // when each connection's timed part ended
        let errors = Counts(connections)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        let group = DispatchGroup()
        let (path, shape, op, connections) = (socket, self.shape, self.op, self.connections)
        let interval = rate > 0 ? UInt64(1e9 / rate) : 0
        let start = DispatchTime.now().uptimeNanoseconds
        for c in 0..<connections {
            group.enter()
            Thread {
                let connection = try! FrameSocket(path: path)
                var rng = SystemRandomNumberGenerator()
                var roles: [Int: Bool] = [:]  // key → "is administrator now"
                // add-remove and invite-remove: what the previous request added, removed by the next.
                var pending: (op: String, actor: String, params: JSONObject)?
                var samples: [Double] = []
                var failed = 0
                var id = 0
                func exchange(_ op: String, _ actor: String, _ params: JSONObject) -> [UInt8] {
                    id += 1
                    var buffer = ByteBufferAllocator().buffer(capacity: 256)
                    buffer.writeRequestFrame(Request(id: .int(Int64(id)), op: op, actor: actor, params: params))
                    connection.write(Array(buffer.readableBytesView))
                    return connection.readFramePayload()
                }
                let mine = Array(stride(from: c + 1, through: shape.environments, by: connections))
                var next = DispatchTime.now().uptimeNanoseconds
                while DispatchTime.now().uptimeNanoseconds < deadline {
                    if interval > 0 {
                        // Paced: one request every `interval`, whatever the replies take.
                        let now = DispatchTime.now().uptimeNanoseconds
                        if now < next { usleep(useconds_t((next - now) / 1000)) }
                        next += interval
                    }
                    let e = mine.randomElement(using: &rng)!
                    let k = Int.random(in: 2...shape.usersPerEnvironment, using: &rng)
                    let user = (e - 1) * shape.usersPerEnvironment + k
                    let admin = "usr_\(e)_\((e - 1) * shape.usersPerEnvironment + 1)"
                    var params: JSONObject
                    var wireOp = op
                    var actor = admin
                    switch op {
                    case "user.invite-remove", "member.add-remove":
                        if let undo = pending {
                            (wireOp, actor, params) = undo
                            pending = nil
                        } else if op == "user.invite-remove" {
                            let email = "bench-\(c)-\(id)-\(UInt32.random(in: 0...UInt32.max, using: &rng))@e\(e).load.test"
                            (wireOp, params) = ("user.invite", ["email": .string(email)])
                            pending = ("user.remove", admin, ["user": .string(email)])
                        } else {
                            // Seeded memberships are organisations (k-1+d) % O + 1 for d in 0...2: d = 5 is never one.
                            let o = (e - 1) * shape.organisationsPerEnvironment + ((k - 1 + 5) % shape.organisationsPerEnvironment) + 1
                            (wireOp, params) = ("member.add", ["organisation": .string("org_\(e)_\(o)"), "user": .string("usr_\(e)_\(user)")])
                            pending = ("member.remove", admin, params)
                        }
                    case "user.set_role":
                        // Seeded: every 10th user advanced, the others basic (user 1 is the administrator).
                        let advanced = roles[user] ?? (k % 10 == 0)
                        roles[user] = !advanced
                        params = ["user": .string("usr_\(e)_\(user)"), "role": advanced ? "basic" : "advanced"]
                    default:
                        // Seeded: user k is member of organisations (k-1+d) % O + 1 for d in 0...2,
                        // administrator of the first when k ≤ O.
                        let d = Int.random(in: 0...2, using: &rng)
                        let o = (e - 1) * shape.organisationsPerEnvironment + ((k - 1 + d) % shape.organisationsPerEnvironment) + 1
                        let key = o &* 1_000_003 &+ user
                        let isAdministrator = roles[key] ?? (d == 0 && k <= shape.organisationsPerEnvironment)
                        roles[key] = !isAdministrator
                        params = ["organisation": .string("org_\(e)_\(o)"), "user": .string("usr_\(e)_\(user)"),
                                  "role": isAdministrator ? "member" : "administrator"]
                    }
                    let sent = DispatchTime.now().uptimeNanoseconds
                    let reply = exchange(wireOp, actor, params)
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - sent) / 1000)
                    if !reply.contains(Array(#""ok":true"#.utf8)) { failed += 1 }
                }
                ends.set(c, [Double(DispatchTime.now().uptimeNanoseconds)])
                // Leave the data as seeded, so that the next run starts from what it assumes (not timed).
                if let undo = pending { _ = exchange(undo.op, undo.actor, undo.params) }
                latencies.set(c, samples)
                errors.set(c, failed)
                group.leave()
            }.start()
        }
        group.wait()
        let elapsed = ((ends.all.max() ?? Double(start)) - Double(start)) / 1e9
        let all = latencies.all.sorted()
        print(#"{"op": "\#(op)", "connections": \#(connections), "replies_per_s": \#(Double(all.count) / elapsed), "p50_us": \#(percentile(all, 0.5)), "p99_us": \#(percentile(all, 0.99)), "errors": \#(errors.total)}"#)
    }
}

/// Latency samples, written once by each client thread.
final class LatencyLog: @unchecked Sendable {
    private var values: [[Double]]
    private let lock = NSLock()
    init(_ n: Int) { values = Array(repeating: [], count: n) }
    func set(_ i: Int, _ v: [Double]) { lock.lock(); values[i] = v; lock.unlock() }
    var all: [Double] { lock.lock(); defer { lock.unlock() }; return values.flatMap { $0 } }
}

extension Array where Element == UInt8 {
    func contains(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { i in self[i..<(i + needle.count)].elementsEqual(needle) }
    }
}
