import ArgumentParser
import Foundation
import NIOCore
import PortierProtocol

/// Holds many watches of every environment (R-WAT-1) for a while and counts
/// the event frames they receive: the other half of `Scripts/bench-watch.sh`,
/// which measures check latency while they are open.
struct Watchers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Hold many watches of every environment; print the frames they received, as JSON.")
    @Option var socket: String
    @Option(help: "Watches to hold.") var count = 1000
    @Option(help: "Watches per connection (at most the server's max_watches).") var perConnection = 8
    @Option var seconds = 10.0

    func run() throws {
        let connections = (count + perConnection - 1) / perConnection
        let frames = Counts(connections)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        let group = DispatchGroup()
        let (path, count, perConnection) = (socket, self.count, self.perConnection)
        for c in 0..<connections {
            group.enter()
            Thread {
                let connection = try! FrameSocket(path: path)
                let watches = min(perConnection, count - c * perConnection)
                for w in 0..<watches {
                    var buffer = ByteBufferAllocator().buffer(capacity: 64)
                    buffer.writeRequestFrame(Request(id: .int(Int64(w + 1)), op: "watch"))
                    connection.write(Array(buffer.readableBytesView))
                }
                var received = 0
                var replies = 0
                while DispatchTime.now().uptimeNanoseconds < deadline {
                    guard connection.waitReadable(milliseconds: 100) else { continue }
                    let payload = connection.readFramePayload()
                    // `{"id":N,"event":…` or `{"id":N,"ok":…`: the first bytes tell (kept cheap:
                    // this client shares the machine with the server it measures).
                    if payload.prefix(24).contains(UInt8(ascii: "e")) { received += 1 } else { replies += 1 }
                }
                if replies < watches { FileHandle.standardError.write(Data("connection \(c): \(replies) of \(watches) watch replies\n".utf8)) }
                frames.set(c, received)
                group.leave()
            }.start()
        }
        group.wait()
        print(#"{"watches": \#(count), "connections": \#(connections), "frames": \#(frames.total), "frames_per_s": \#(Double(frames.total) / seconds)}"#)
    }
}

extension FrameSocket {
    /// Whether bytes (or a frame already buffered) can be read within the time.
    func waitReadable(milliseconds: Int32) -> Bool {
        if hasBufferedFrame { return true }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, milliseconds) > 0
    }
}
