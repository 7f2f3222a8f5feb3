import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import PortierProtocol
import PortierTransport

/// `portier-bench parse` (Scripts/bench-parse.sh): how long the worst request
/// shapes at the frame limit take to decode, against a plain frame of the same
/// size (target: at most 3×); then, on a real transport with one event loop,
/// how much those frames delay pings on another connection of that loop.
struct Parse: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decode time of worst-case frames vs a plain frame; ping delay on the same event loop.")
    @Option(help: "Frame size to fill, in bytes (default: the 1 MiB frame limit).") var bytes = (1 << 20) - 64
    @Option(help: "Decodes per shape.") var repetitions = 40
    @Option(help: "Seconds of pinging per shape for the event-loop delay (0: skip).") var pingSeconds = 3.0

    func run() throws {
        let limits = JSONLimits.requests
        let frames = [WorstCaseJSON.plain] + WorstCaseJSON.shapes
        var baseline = 0.0
        print("decode time of one frame (Request.decode, caps of hello), median of \(repetitions):")
        print("shape                 bytes      median ms   min ms   × plain   outcome")
        for shape in frames {
            let payload = WorstCaseJSON.request(shape, bytes: bytes, limits: limits)
            var buffer = ByteBufferAllocator().buffer(capacity: payload.count)
            buffer.writeBytes(payload)
            var times: [Double] = []
            var outcome = "ok"
            for _ in 0..<repetitions {
                let start = DispatchTime.now().uptimeNanoseconds
                do throws(RequestDecodingError) {
                    _ = try Request.decode(payload: buffer, limits: limits)
                } catch {
                    outcome = error.error.message
                }
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            times.sort()
            let median = times[times.count / 2]
            if shape.name == WorstCaseJSON.plain.name { baseline = median }
            print(pad(shape.name, 20), pad("\(payload.count)", 10), pad(String(format: "%.2f", median), 11), pad(String(format: "%.2f", times[0]), 8),
                  pad(String(format: "%.2f", median / baseline), 9), outcome)
        }
        guard pingSeconds > 0 else { return }
        try pingDelay(frames: frames, limits: limits)
    }

    /// One event loop, an `OfflineResponder`: connection A sends one shape's
    /// frames back to back, connection B pings every millisecond.
    func pingDelay(frames: [WorstCaseJSON.Shape], limits: JSONLimits) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let path = "/tmp/portier-bench-parse-\(getpid()).sock"
        unlink(path)
        defer { unlink(path) }
        let settings = ConnectionSettings(frameLimits: FrameLimits(json: limits))
        let admission = SocketAdmission(socket: .service, maximumConnections: 16)
        let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let server = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(
                        responder: OfflineResponder(), admission: admission, settings: settings, logger: logger))
                }
            }
            .bind(unixDomainSocketPath: path).wait()
        defer { try? server.close().wait() }

        print("\nping round trips on one event loop (µs) while another connection sends frames of each shape back to back:")
        print("load                  p50       p99       max    frames sent")
        for shape in [nil] + frames {
            let flood = shape.map { WorstCaseJSON.request($0, bytes: bytes, limits: limits) }
            let stop = ManagedAtomicFlag()
            let sent = Counts(1)
            let flooder = flood.map { payload in
                Thread {
                    let connection = try! FrameSocket(path: path)
                    let frame = withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
                    var count = 0
                    while !stop.isSet {
                        connection.write(frame)
                        connection.readFrame()
                        count += 1
                    }
                    sent.set(0, count)
                }
            }
            flooder?.start()
            let pinger = try FrameSocket(path: path)
            let ping = Array(#"{"id":1,"op":"ping"}"#.utf8)
            let pingFrame = withUnsafeBytes(of: UInt32(ping.count).bigEndian, Array.init) + ping
            var samples: [Double] = []
            let end = DispatchTime.now().uptimeNanoseconds + UInt64(pingSeconds * 1e9)
            while DispatchTime.now().uptimeNanoseconds < end {
                let start = DispatchTime.now().uptimeNanoseconds
                pinger.write(pingFrame)
                pinger.readFrame()
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
                usleep(1000)
            }
            stop.set()
            Thread.sleep(forTimeInterval: 0.2)
            samples.sort()
            print(pad(shape?.name ?? "none (quiet)", 20), pad(String(format: "%.0f", percentile(samples, 0.5)), 9),
                  pad(String(format: "%.0f", percentile(samples, 0.99)), 9), pad(String(format: "%.0f", samples.last ?? 0), 9), "\(sent.total)")
        }
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}

/// A flag one thread sets and another polls.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
