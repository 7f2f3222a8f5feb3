#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore

/// Checks and preparation of a Unix socket's file before and after binding.
enum SocketFile {
    /// Whether a server is accepting connections on `path` right now.
    static func isInUse(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connect(fd, to: path)
    }

    /// Connects `fd` to the Unix socket at `path`.
    private static func connect(_ fd: Int32, to path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }

    /// Takes the lock beside a socket this process is about to bind: the file
    /// `<path>.lock`, held with `flock` for as long as the server listens. The
    /// kernel drops the lock when the process dies, however it dies, so a lock
    /// that cannot be taken means a running server (R-OPS-2); a socket file
    /// that accepts connections without its lock being held belongs to nobody
    /// who serves it (e.g. a child that inherited it from a crashed server) and
    /// is taken over. Returns the lock's descriptor (close-on-exec), or nil when
    /// the lock file cannot be opened (another user's); then the connect test
    /// alone decides.
    static func lock(_ path: String) throws(ServerError) -> Int32? {
        let fd = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK { throw inUse(path) }
            return nil
        }
        return fd
    }

    /// The refusal for a socket a running server holds.
    static func inUse(_ path: String) -> ServerError {
        ServerError("\(path) is in use by a running server: stop it first, or choose another --socket-dir (or --state-dir)")
    }

    /// Whether something answers on `path`: a `ping` frame gets any bytes back
    /// within `timeout` (a refusal frame counts). Tells a serving server that
    /// holds no lock (one socket-activated by systemd, an older portierd) from a
    /// socket that only sits in someone's descriptor table.
    static func answers(_ path: String, timeout: Int = 1) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, to: path) else { return false }
        let payload = Array(#"{"id":0,"op":"ping"}"#.utf8)
        let frame = withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
        guard frame.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == frame.count else { return false }
        var reply = [UInt8](repeating: 0, count: 4)
        return reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4, 0) } > 0
    }

    /// The file's device and inode: which socket a path names now.
    static func identity(_ path: String) -> (dev_t, ino_t)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_dev, st.st_ino)
    }

    /// Removes a socket file left behind by a server that is gone.
    static func removeStale(_ path: String) {
        var st = stat()
        if lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
    }

    static func setMode(_ path: String, _ mode: UInt32) throws(ServerError) {
        guard chmod(path, mode_t(mode)) == 0 else {
            throw ServerError("cannot set mode \(String(mode, radix: 8)) on \(path): \(describe(errno))")
        }
    }

    /// A new folder only this user can enter, beside `path`, to bind a socket in.
    static func stagingFolder(beside path: String) throws(ServerError) -> String {
        let folder = (path as NSString).deletingLastPathComponent + "/.portierd-bind-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(folder, 0o700) == 0 else { throw ServerError("cannot create \(folder) (--socket-dir): \(describe(errno))") }
        return folder
    }

    /// Moves a bound socket's file into place.
    static func move(_ from: String, to path: String) throws(ServerError) {
        guard rename(from, path) == 0 else { throw ServerError("cannot move the socket to \(path) (--socket-dir): \(describe(errno))") }
    }

    /// An errno as words ("Permission denied (errno 13)").
    static func describe(_ code: Int32) -> String { "\(String(cString: strerror(code))) (errno \(code))" }

    /// The words of a bind or I/O failure, without the type dump.
    static func reason(_ error: any Error) -> String {
        if let io = error as? IOError { return describe(io.errnoCode) }
        return "\(error)"
    }
}

extension SocketFile {
    /// Gives the socket file to `group` (a name or a numeric gid).
    static func setGroup(_ path: String, _ group: String, option: String) throws(ServerError) {
        let gid: gid_t
        if let number = gid_t(group) {
            gid = number
        } else if let entry = getgrnam(group) {
            gid = entry.pointee.gr_gid
        } else {
            throw ServerError("no group \(group) (\(option)) for \(path)", setting: option, isUsage: true)
        }
        guard chown(path, uid_t.max, gid) == 0 else {
            let code = errno
            let hint = code == EPERM ? ": portierd must be a member of the group (systemd: SupplementaryGroups=\(group))" : ""
            throw ServerError("cannot give \(path) to group \(group) (\(option)): \(describe(code))\(hint)", setting: option)
        }
    }
}

/// A transport failure at start-up, with a message for the operator.
public struct ServerError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// The setting behind it, when one is (e.g. `--service-socket-group`).
    public let setting: String?
    /// A value that can never work (a group that does not exist), not a state of the system.
    public let isUsage: Bool
    public init(_ message: String, setting: String? = nil, isUsage: Bool = false) {
        self.message = message
        self.setting = setting
        self.isUsage = isUsage
    }
    public var description: String { message }
}
