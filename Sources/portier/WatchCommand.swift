import ArgumentParser
import Foundation
import PortierClient
import PortierProtocol

/// `portier watch`: prints permission changes as they are committed (R-WAT-1).
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Print permission changes as they are committed (the change feed), until interrupted.",
        discussion: """
            One line per change: the revision, the kind, and its fields (--json: one event frame's \
            `event` per line). Reconnects by itself when the connection drops or the server stops, \
            and resumes after the last revision printed; a gap it cannot fill (resync_required) \
            ends the command with status 2.
            """
    )
    @OptionGroup var connection: ConnectionOptions

    @Option(name: .customLong("environment"), help: "An environment to watch (repeat for several; default: every environment).")
    var environments: [String] = []

    @Option(help: "Resume after this revision token (env_<n>:<revision>; repeat, one per environment).")
    var after: [String] = []

    func run() async throws {
        let watch = PortierWatch(path: connection.socketPath, environments: environments.isEmpty ? nil : environments, after: after)
        do {
            for try await update in watch {
                switch update {
                case .event(let event):
                    if connection.json {
                        let object: JSONObject = [
                            "environment": .string(event.environment), "revision": .string(event.revision),
                            "changes": .array(event.changes.map(JSONValue.object)),
                        ]
                        Self.emit(JSONValue.object(object).jsonText)
                    } else {
                        for change in event.changes { Self.emit(Self.line(event.revision, change)) }
                    }
                case .resumed:
                    FileHandle.standardError.write(Data("portier: reconnected; resumed after the last revision seen\n".utf8))
                }
            }
        } catch let error as PortierError {
            FileHandle.standardError.write(Data("portier: \(error.code.rawValue): \(error.message)\n".utf8))
            throw ExitCode(CLIExit.refused.rawValue)
        }
    }

    /// Writes a line at once (no buffering: a pipe reader sees each event as it comes).
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// `env_3:17  membership.role_changed  organisation=org_3_5 user=usr_3_9 role=administrator previous_role=member`
    static func line(_ revision: String, _ change: JSONObject) -> String {
        let kind = change["kind"]?.stringValue ?? "?"
        let fields = change.pairs.filter { $0.key != "kind" }.map { "\($0.key)=\($0.value.stringValue ?? $0.value.jsonText)" }
        return ([revision, kind] + fields).joined(separator: "  ")
    }
}
