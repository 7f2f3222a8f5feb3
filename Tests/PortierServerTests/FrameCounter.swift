import Foundation
import PortierDomain
import PortierProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A blocking stream socket connected to the Unix socket at `path`.
func connectUnixSocket(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
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
    guard ok == 0 else {
        close(fd)
        throw POSIXError(.ECONNREFUSED)
    }
    return fd
}

/// A raw Unix-socket client that reads while it writes (a thread reads and
/// counts reply frames by error code), so that long pipelines and big bursts
/// do not deadlock against the server's output bound.
final class FrameCounter: @unchecked Sendable {
    let fd: Int32
    private let counts = Mutex<[String: Int]>([:])
    private let ended = Atomic<Bool>(false)
    private var reader: Thread?

    init(path: String) throws {
        fd = try connectUnixSocket(path)
        let thread = Thread { [unowned self] in self.readLoop() }
        reader = thread
        thread.start()
    }

    deinit { close(fd) }

    /// Replies seen so far, by error code (`ok` for successes).
    var replies: [String: Int] { counts.withLock { $0 } }
    var total: Int { replies.values.reduce(0, +) }
    /// Whether the server closed the connection.
    var closedByServer: Bool { ended.load(ordering: .relaxed) }

    private func readLoop() {
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 {
                if n < 0, errno == EINTR { continue }
                ended.store(true, ordering: .relaxed)
                return
            }
            pending.append(contentsOf: chunk[0..<n])
            var offset = 0
            var found: [String] = []
            while pending.count - offset >= 4 {
                let length = Int(pending[offset]) << 24 | Int(pending[offset + 1]) << 16 | Int(pending[offset + 2]) << 8 | Int(pending[offset + 3])
                guard pending.count - offset - 4 >= length else { break }
                let payload = Array(pending[(offset + 4)..<(offset + 4 + length)])
                offset += 4 + length
                let code: String
                if case .object(let o)? = try? JSONParser.parse(payload) {
                    code = o["ok"] == .bool(true) ? "ok" : (o["error"]?.objectValue?["code"]?.stringValue ?? "?")
                } else {
                    code = "unparsable"
                }
                found.append(code)
            }
            pending.removeFirst(offset)
            if !found.isEmpty {
                counts.withLock { c in for code in found { c[code, default: 0] += 1 } }
            }
        }
    }

    /// Writes all of `bytes` (in as few `send` calls as the kernel allows), on a
    /// thread of its own: a blocking write must not occupy the concurrency pool,
    /// which the in-process server needs to answer.
    func write(_ bytes: [UInt8]) async throws {
        let fd = self.fd
        let failure: Int32 = await withCheckedContinuation { continuation in
            Thread {
                var offset = 0
                while offset < bytes.count {
                    let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        continuation.resume(returning: errno)
                        return
                    }
                    offset += n
                }
                continuation.resume(returning: 0)
            }.start()
        }
        if failure != 0 { throw POSIXError(POSIXErrorCode(rawValue: failure) ?? .EIO) }
    }

    /// Waits until `count` replies arrived (true) or the time is up.
    func waitFor(_ count: Int, seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if total >= count { return true }
            if closedByServer { return total >= count }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return total >= count
    }

    static func frame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        return withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
    }
}
