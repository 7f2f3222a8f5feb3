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
    @Option(help: "Made-up client keys each flooding connection spreads its bogus logins over (R-SEC-5: a flooding front end naming many end users).") var clientKeys = 1
    @Flag(help: "With --sustained: measure the real logins through the first flooding connection, under a client key of their own (the flooding front end's real user), instead of on a connection of their own.") var throughFlood = false

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
            : frame(n, "user.authenticate", ["email": .string("nobody\(c)-\(n)@flood.test"), "password": "guess guess", "client": .string("flood-\(c)-\(n % max(1, clientKeys))")])
    }

    /// Ids of the real logins sent through a flooding connection (the flood's are below).
    static let realIDs = 1_000_000_000

    func sustainedFlood(_ user: FrameSocket) -> ([Double], Int) {
        let stop = ManagedAtomicFlag()
        let sent = Counts(floodConnections)
        let group = DispatchGroup()
        let through = Samples()
        for c in 0..<floodConnections {
            group.enter()
            Thread {
                let connection = try! FrameSocket(path: socket)
                var n = 0
                var batch: [UInt8] = []
                for _ in 0..<floodDepth { n += 1; batch += bogus(connection: c, n: n) }
                connection.write(batch)
                var answered = 0
                // The first connection also carries the real user's logins, one at a time, under its own key.
                let carriesReal = throughFlood && c == 0
                var realStart: UInt64?
                var realCount = 0
                while !stop.isSet {
                    if carriesReal, realStart == nil, realCount < logins {
                        realStart = DispatchTime.now().uptimeNanoseconds
                        connection.write(frame(Self.realIDs + realCount, "user.authenticate",
                                               ["email": .string(email), "password": .string(password), "client": "203.0.113.7"]))
                    }
                    var more: [UInt8] = []
                    if carriesReal {
                        let payload = connection.readFramePayload()
                        if let id = Self.replyID(payload), id >= Self.realIDs, let started = realStart {
                            through.add(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
                            realStart = nil
                            realCount += 1
                            continue
                        }
                        answered += 1
                        n += 1
                        more = bogus(connection: c, n: n)
                    } else {
                        let arrived = connection.readAvailableFrames()
                        answered += arrived
                        for _ in 0..<arrived { n += 1; more += bogus(connection: c, n: n) }
                    }
                    connection.write(more)
                }
                sent.set(c, answered)
                group.leave()
            }.start()
        }
        Thread.sleep(forTimeInterval: 1)  // the flood is under way
        let flooded: [Double]
        if throughFlood {
            while through.count < logins { Thread.sleep(forTimeInterval: 0.05) }
            flooded = through.sorted
        } else {
            flooded = measure(user, count: logins)
        }
        stop.set()
        group.wait()
        return (flooded, sent.total)
    }

    /// The id of a reply frame's payload (`{"id":N,…`), when it is a number.
    static func replyID(_ payload: [UInt8]) -> Int? {
        guard payload.count > 6, payload.starts(with: Array(#"{"id":"#.utf8)) else { return nil }
        var value = 0
        for byte in payload.dropFirst(6) {
            guard byte >= 48, byte <= 57 else { break }
            value = value * 10 + Int(byte - 48)
        }
        return value
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
        let shape = "\(floodConnections) connections × \(floodDepth) in flight" + (clientKeys > 1 ? " under \(clientKeys) made-up client keys each" : "")
        if sustained {
            let (samples, answered) = sustainedFlood(user)
            flooded = samples
            let whose = throughFlood ? "through the flooding front end, under its own client key" : "on a connection of its own"
            print(line("during a sustained flood (\(shape)), a real login \(whose)", flooded) + " (\(answered) bogus requests answered meanwhile)")
            if throughFlood {
                // Its fair share: one turn per waiting connection per round, and within its
                // connection one turn per waiting key: at most connections × (keys + 1) hashes.
                print("fair-share bound: \(floodConnections * (clientKeys + 1)) hashes (\(floodConnections) connections × \(clientKeys + 1) keys on its own)")
            }
        } else {
            flooded = try bursts(user)
            print(line("right after bursts of \(floodConnections) × \(floodDepth) bogus requests", flooded))
        }
        if !throughFlood {
            print(String(format: "target: p99 ≤ %.0f ms: %@", target, percentile(flooded, 0.99) <= target ? "met" : "NOT met"))
        }
    }
}

/// Latency samples from another thread.
final class Samples: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Double] = []
    func add(_ v: Double) { lock.lock(); values.append(v); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return values.count }
    var sorted: [Double] { lock.lock(); defer { lock.unlock() }; return values.sorted() }
}
