#if canImport(Glibc)
import ArgumentParser
import Foundation
import Glibc
import NIOCore
import NIOPosix
import PortierPasswords
import PortierProtocol
import PortierService
#endif

/// `portier-bench`: the floor (an echo server) and a load client that drives it
/// and `portierd` the same way, for `Scripts/bench-checks.sh`.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portier-bench",
        abstract: "Benchmark permission checks against the floor of a Unix-socket round trip.",
        version: "0.1.0",
        subcommands: [Echo.self, Warm.self, Latency.self, Throughput.self, Mutations.self, Watchers.self, PasswordCost.self, Parse.self, LoginFlood.self]
    )
}

/// The shape of the seeded data (Scripts/bench-seed.sql): environment e has users
/// (e-1)*U+1…e*U and organisations (e-1)*O+1…e*O.
struct DataShape: ParsableArguments {
    @Option(help: "Environments.") var environments = 1000
    @Option(help: "Users per environment.") var usersPerEnvironment = 100
    @Option(help: "Organisations per environment.") var organisationsPerEnvironment = 10
    @Option(help: "check or check.bulk.") var op = "check"
    @Option(help: "Checks per check.bulk request.") var bulkSize = 100

    func request(id: Int, rng: inout SystemRandomNumberGenerator, environment: Int? = nil) -> [UInt8] {
        func item() -> JSONValue {
            let e = environment ?? Int.random(in: 1...environments, using: &rng)
            let u = (e - 1) * usersPerEnvironment + Int.random(in: 1...usersPerEnvironment, using: &rng)
            let o = (e - 1) * organisationsPerEnvironment + Int.random(in: 1...organisationsPerEnvironment, using: &rng)
            return ["user": .string("usr_\(e)_\(u)"), "permission": "documents.view", "organisation": .string("org_\(e)_\(o)")]
        }
        let params: JSONObject = op == "check.bulk"
            ? ["checks": .array((0..<bulkSize).map { _ in item() })]
            : item().objectValue!
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        buffer.writeRequestFrame(Request(id: .int(Int64(id)), op: op, params: params))
        return Array(buffer.readableBytesView)
    }
}

/// A blocking Unix-socket connection reading and writing whole frames. Reads are
/// buffered: one `read` takes in every reply that has arrived, as a pipelining
/// client should (the client must not be what the benchmark measures).
final class FrameSocket {
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    private var start = 0, end = 0

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else { throw ValidationError("cannot connect to \(path)") }
    }

    deinit { close(fd) }

    func write(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + sent, bytes.count - sent) }
            if n <= 0 { fatalError("write failed") }
            sent += n
        }
    }

    /// Reads one frame; returns its payload.
    func readFramePayload() -> [UInt8] {
        while true {
            if let payload = takeFrame() { return Array(buffer[payload]) }
            fill()
        }
    }

    /// Reads one frame; returns its payload length.
    @discardableResult
    func readFrame() -> Int {
        while true {
            if let payload = takeFrame() { return payload.count }
            fill()
        }
    }

    /// Waits for at least one frame, then takes every complete frame already
    /// received; returns how many.
    func readAvailableFrames() -> Int {
        var count = 0
        while count == 0 {
            while takeFrame() != nil { count += 1 }
            if count == 0 { fill() }
        }
        return count
    }

    /// Whether a whole frame is already buffered.
    var hasBufferedFrame: Bool {
        guard end - start >= 4 else { return false }
        let length = Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
        return end - start >= 4 + length
    }

    /// The next complete frame's payload, as a range of the buffer (valid until
    /// the next `fill`), or nil.
    private func takeFrame() -> Range<Int>? {
        guard end - start >= 4 else { return nil }
        let length = Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16 | Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
        guard end - start >= 4 + length else { return nil }
        defer { start += 4 + length }
        return (start + 4)..<(start + 4 + length)
    }

    private func fill() {
        if start > 0 {
            buffer.withUnsafeMutableBytes { raw in
                _ = memmove(raw.baseAddress!, raw.baseAddress! + start, end - start)
            }
            end -= start
            start = 0
        }
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + end, $0.count - end) }
        if n <= 0 { fatalError("connection closed") }
        end += n
    }
}

/// Per-connection reply counts, written once by each client thread.
final class Counts: @unchecked Sendable {
    private var values: [Int]
    private let lock = NSLock()
    init(_ n: Int) { values = Array(repeating: 0, count: n) }
    func set(_ i: Int, _ v: Int) { lock.lock(); values[i] = v; lock.unlock() }
    var total: Int { lock.lock(); defer { lock.unlock() }; return values.reduce(0, +) }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Loads every environment's index before measuring: a `check.bulk` of one question
/// per environment, pipelined, and waits for every reply (a bulk read of a cold
/// environment is answered only after its load; a single check would be answered
/// by PostgreSQL while the load runs on). Without it, loads still running skew the
/// first numbers.
struct Warm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask one check in every environment and wait for all replies.")
    @Option var socket: String
    @Option(help: "Requests in flight.") var window = 64
    @OptionGroup var shape: DataShape

    func run() throws {
        let connection = try FrameSocket(path: socket)
        var rng = SystemRandomNumberGenerator()
        var shape = self.shape
        (shape.op, shape.bulkSize) = ("check.bulk", 1)
        var sent = 0, received = 0
        while received < shape.environments {
            while sent < shape.environments, sent - received < window {
                connection.write(shape.request(id: sent, rng: &rng, environment: sent + 1))
                sent += 1
            }
            _ = connection.readFrame()
            received += 1
        }
        print(#"{"environments": \#(received)}"#)
    }
}

struct Latency: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sequential round trips on one connection: p50/p99/p99.9 in µs, as JSON.")
    @Option var socket: String
    @Option var requests = 20_000
    @OptionGroup var shape: DataShape

    func run() throws {
        let connection = try FrameSocket(path: socket)
        var rng = SystemRandomNumberGenerator()
        let frames = (0..<1000).map { shape.request(id: $0, rng: &rng) }
        for i in 0..<min(2000, requests) { connection.write(frames[i % frames.count]); _ = connection.readFrame() }  // warm-up
        var samples: [Double] = []
        samples.reserveCapacity(requests)
        for i in 0..<requests {
            let start = DispatchTime.now().uptimeNanoseconds
            connection.write(frames[i % frames.count])
            _ = connection.readFrame()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
        }
        samples.sort()
        print(#"{"p50_us": \#(percentile(samples, 0.5)), "p99_us": \#(percentile(samples, 0.99)), "p999_us": \#(percentile(samples, 0.999)), "requests": \#(requests)}"#)
    }
}

struct Throughput: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pipelined requests over several connections: replies per second, as JSON.")
    @Option var socket: String
    @Option var connections = 4
    @Option var depth = 32
    @Option var seconds = 5.0
    @OptionGroup var shape: DataShape

    func run() throws {
        let counts = Counts(connections)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        let group = DispatchGroup()
        let path = socket
        let shape = self.shape
        let depth = self.depth
        let start = DispatchTime.now().uptimeNanoseconds
        for c in 0..<connections {
            let thread = Thread {
                let connection = try! FrameSocket(path: path)
                var rng = SystemRandomNumberGenerator()
                let frames = (0..<256).map { shape.request(id: $0, rng: &rng) }
                var sent = 0, received = 0
                // Keeps `depth` requests in flight; replies that arrive together are
                // answered with one write carrying as many new requests.
                func send(_ count: Int) {
                    var batch: [UInt8] = []
                    for _ in 0..<count { batch += frames[sent % frames.count]; sent += 1 }
                    connection.write(batch)
                }
                send(depth)
                while DispatchTime.now().uptimeNanoseconds < deadline {
                    let arrived = connection.readAvailableFrames()
                    received += arrived
                    send(arrived)
                }
                while received < sent { received += connection.readAvailableFrames() }
                counts.set(c, received)
                group.leave()
            }
            group.enter()
            thread.start()
        }
        group.wait()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let total = counts.total
        let perRequest = shape.op == "check.bulk" ? shape.bulkSize : 1
        print(#"{"replies_per_s": \#(Double(total) / elapsed), "decisions_per_s": \#(Double(total * perRequest) / elapsed), "connections": \#(connections), "depth": \#(depth)}"#)
    }
}

/// The floor: a NIO server on a Unix socket that answers every frame with a
/// frame of a given size, doing nothing else. Same event-loop setup as portierd.
struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the floor: answer each frame with a fixed reply frame.")
    @Option var socket: String
    @Option(help: "Reply payload size in bytes (Portier's check reply is about 90).") var replyBytes = 90

    func run() async throws {
        unlink(socket)
        var reply = ByteBufferAllocator().buffer(capacity: replyBytes + 4)
        reply.writeFrame { $0.writeString(String(repeating: " ", count: replyBytes)) }
        let canned = reply
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(maximumFrameBytes: 1 << 20)), EchoHandler(reply: canned),
                    ])
                }
            }
            .bind(unixDomainSocketPath: socket).get()
        print("echo server on \(socket)")
        fflush(nil)
        try await channel.closeFuture.get()
    }
}

final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reply: ByteBuffer
    init(reply: ByteBuffer) { self.reply = reply }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
    }
}

/// What one password hash costs here with the parameters portierd uses (R-USR-4).
struct PasswordCost: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "password-cost", abstract: "Time scrypt with portierd's default parameters.")
    @Option var hashes = 10

    func run() throws {
        let parameters = PasswordHasher.Parameters.default
        var times: [Double] = []
        for i in 0..<hashes {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = PasswordHasher.hash("password \(i)", parameters: parameters)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        times.sort()
        print("scrypt N=2^\(parameters.log2N) r=\(parameters.blockSize) p=\(parameters.parallelism) (\((128 * parameters.blockSize * (1 << parameters.log2N)) >> 20) MiB): median \(String(format: "%.1f", times[times.count / 2])) ms, min \(String(format: "%.1f", times[0])) ms over \(hashes) hashes")
    }
}
