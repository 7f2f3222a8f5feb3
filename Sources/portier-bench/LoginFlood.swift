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

    func measure(_ connection: FrameSocket, count: Int) -> [Double] {
        var samples: [Double] = []
        for i in 0..<count {
            let start = DispatchTime.now().uptimeNanoseconds
            connection.write(frame(i, "user.authenticate", ["email": .string(email), "password": .string(password), "client": "203.0.113.7"]))
            connection.readFrame()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return samples.sorted()
    }

    @Flag(help: "Keep every flooding connection's requests in flight the whole time (refill as replies come), instead of bursts.") var sustained = false

    /// Bursts, as in the finding: each flooding connection pipelines
    /// `floodDepth` bogus requests at once (3 × 128 = 384), and right after the
    /// burst the user logs in; the flood's replies are drained before the next
    /// round. One login per round.
    func bursts(_ user: FrameSocket) throws -> [Double] {
        let flooders = try (0..<floodConnections).map { _ in try FrameSocket(path: socket) }
        var samples: [Double] = []
        for round in 0..<logins {
            for (c, connection) in flooders.enumerated() {
                var batch: [UInt8] = []
                for i in 0..<floodDepth { batch += bogus(connection: c, n: round * floodDepth + i) }
                connection.write(batch)
            }
            samples += measure(user, count: 1)
            for connection in flooders {
                var answered = 0
                while answered < floodDepth { answered += connection.readAvailableFrames() }
            }
        }
        return samples.sorted()
    }

    func bogus(connection c: Int, n: Int) -> [UInt8] {
        n % 2 == 0
            ? frame(n, "user.activate", ["token": .string("1.\(String(repeating: "b", count: 43))"), "password": "made up password"])
            : frame(n, "user.authenticate", ["email": .string("nobody\(c)-\(n)@flood.test"), "password": "guess guess", "client": .string("flood-\(c)")])
    }

    func sustainedFlood(_ user: FrameSocket) -> ([Double], Int) {
        let stop = ManagedAtomicFlag()
        let sent = Counts(floodConnections)
        let group = DispatchGroup()
        for c in 0..<floodConnections {
            group.enter()
            Thread {
                let connection = try! FrameSocket(path: socket)
                var n = 0
                var batch: [UInt8] = []
                for _ in 0..<floodDepth { n += 1; batch += bogus(connection: c, n: n) }
                connection.write(batch)
                var answered = 0
                while !stop.isSet {
                    let arrived = connection.readAvailableFrames()
                    answered += arrived
                    var more: [UInt8] = []
                    for _ in 0..<arrived { n += 1; more += bogus(connection: c, n: n) }
                    connection.write(more)
                }
                sent.set(c, answered)
                group.leave()
            }.start()
        }
        Thread.sleep(forTimeInterval: 1)  // the flood is under way
        let flooded = measure(user, count: logins)
        stop.set()
        group.wait()
        return (flooded, sent.total)
    }

    func run() throws {
        let user = try FrameSocket(path: socket)
        let quiet = measure(user, count: logins)
        func line(_ name: String, _ s: [Double]) -> String {
            String(format: "%@: p50 %.0f ms, p99 %.0f ms, max %.0f ms", name, percentile(s, 0.5), percentile(s, 0.99), s.last ?? 0)
        }
        print(line("quiet", quiet))
        let target = max(1500, 5 * percentile(quiet, 0.99))
        let flooded: [Double]
        if sustained {
            let (samples, answered) = sustainedFlood(user)
            flooded = samples
            print(line("during a sustained flood", flooded) + " (\(answered) bogus requests answered meanwhile)")
        } else {
            flooded = try bursts(user)
            print(line("right after bursts of \(floodConnections) × \(floodDepth) bogus requests", flooded))
        }
        print(String(format: "target: p99 ≤ %.0f ms: %@", target, percentile(flooded, 0.99) <= target ? "met" : "NOT met"))
    }
}
