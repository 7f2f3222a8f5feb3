import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion with posix_spawn and waitpid, its output in a
/// file. (Foundation's `Process` was seen here never reaping children while an
/// async main runs, and a pipe would be held open by the postmaster.)
///
/// A child gets no descriptor of `portierd` but its standard ones (R-OPS-2):
/// SwiftNIO opens its sockets without close-on-exec, so a postmaster started
/// from here would otherwise hold the listening sockets after a crash of
/// `portierd`, and clients would connect to a socket nobody serves.
enum Spawn {
    struct Outcome {
        let status: Int32
        let output: String
    }

    static func run(_ path: String, _ arguments: [String]) throws -> Outcome {
        let outputPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("portier-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).out").path
        defer { unlink(outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        Descriptors.markAllCloseOnExec()

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw EmbeddedPostgresError(message: "cannot run \(path): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS by hand: the macros are not imported.
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: exitCode, output: output)
    }
}

/// This process's descriptors.
public enum Descriptors {
    /// Sets close-on-exec on every open descriptor above standard error, so that
    /// no program started afterwards inherits one (R-OPS-2). Called before each
    /// spawn: descriptors opened since (a connection accepted meanwhile) are
    /// covered by the next call; the embedded cluster is spawned before serving.
    public static func markAllCloseOnExec() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let fd = Int32(entry), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// The descriptors above standard error that a spawned program would inherit.
    public static func inheritable() -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return [] }
        return entries.compactMap(Int32.init).filter { fd in
            guard fd > 2 else { return false }
            let flags = fcntl(fd, F_GETFD)
            return flags >= 0 && flags & FD_CLOEXEC == 0
        }.sorted()
    }
}
