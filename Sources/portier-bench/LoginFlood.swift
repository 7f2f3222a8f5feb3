import ArgumentParser
import Foundation
import NIOCore
import PortierProtocol

/// `portier-bench login-flood` (Scripts/bench-login.sh): a real user's login
/// latency on a quiet server, then while other connections flood it with
/// activations of made-up tokens and logins of unknown addresses (R-SEC-2:
/// target p99 during the flood ≤ max(1.5 s, 5 × quiet p99)).
struct LoginFlood: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "login-flood", abstract: "Login latency, quiet and under a flood of bogus logins and activations.")
    @Option var socket: String
    @Option var email: String
    @Option var password: String
    @Option(help: "Logins measured in each phase.") var logins = 30
    @Option(help: "Flooding connections.") var floodConnections = 3
    @Option(help: "Bogus requests each flooding connection keeps in flight.") var floodDepth = 128

    func frame(_ id: Int, _ op: String, _ params: JSONObject) -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        buffer.writeRequestFrame(Request(id: .int(Int64(id)), op: op, params: params))
        return Array(buffer.readableBytesView)
    }

    func measure(_ connection: FrameSocket) -> [Double] {
        var samples: [Double] = []
        for i in 0..<logins {
            let start = DispatchTime.now().uptimeNanoseconds
            connection.write(frame(i, "user.authenticate", ["email": .string(email), "password": .string(password), "client": "203.0.113.7"]))
            connection.readFrame()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return samples.sorted()
    }

    func run() throws {
        let user = try FrameSocket(path: socket)
        let quiet = measure(user)
        let stop = ManagedAtomicFlag()
        let sent = Counts(floodConnections)
        let group = DispatchGroup()
        for c in 0..<floodConnections {
            group.enter()
            Thread {
                let connection = try! FrameSocket(path: socket)
                var n = 0
                func bogus() -> [UInt8] {
                    n += 1
                    return n % 2 == 0
                        ? frame(n, "user.activate", ["token": .string("1.\(String(repeating: "b", count: 43))"), "password": "made up password"])
                        : frame(n, "user.authenticate", ["email": .string("nobody\(c)-\(n)@flood.test"), "password": "guess guess", "client": .string("flood-\(c)")])
                }
                var batch: [UInt8] = []
                for _ in 0..<floodDepth { batch += bogus() }
                connection.write(batch)
                var answered = 0
                while !stop.isSet {
                    let arrived = connection.readAvailableFrames()
                    answered += arrived
                    var more: [UInt8] = []
                    for _ in 0..<arrived { more += bogus() }
                    connection.write(more)
                }
                sent.set(c, answered)
                group.leave()
            }.start()
        }
        Thread.sleep(forTimeInterval: 1)  // the flood is under way
        let flooded = measure(user)
        stop.set()
        group.wait()
        func line(_ name: String, _ s: [Double]) -> String {
            String(format: "%@: p50 %.0f ms, p99 %.0f ms, max %.0f ms", name, percentile(s, 0.5), percentile(s, 0.99), s.last ?? 0)
        }
        print(line("quiet", quiet))
        print(line("during the flood", flooded) + " (\(sent.total) bogus requests answered meanwhile)")
        let target = max(1500, 5 * percentile(quiet, 0.99))
        print(String(format: "target: p99 during the flood ≤ %.0f ms: %@", target, percentile(flooded, 0.99) <= target ? "met" : "NOT met"))
    }
}
