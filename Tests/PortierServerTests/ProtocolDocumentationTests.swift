import Foundation
import PortierDomain
import PortierProtocol
@testable import PortierService
import Testing

/// Protocol/ is the contract: these tests fail when the code and the folder disagree.
@Suite("Protocol/ matches the code")
struct ProtocolDocumentationTests {
    static let protocolFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol")

    @Test("the error-code table in Protocol/README.md lists exactly ErrorCode's cases")
    func errorCodesInReadme() throws {
        let readme = try String(contentsOf: Self.protocolFolder.appendingPathComponent("README.md"), encoding: .utf8)
        let section = readme.components(separatedBy: "## Error codes").last!.components(separatedBy: "## Operations").first!
        let documented = Set(section.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `") else { return nil }
            return line.split(separator: "`")[1].description
        })
        #expect(documented == Set(ErrorCode.allCases.map(\.rawValue)))
    }

    @Test("common.json's error_code enum lists exactly ErrorCode's cases")
    func errorCodesInSchema() throws {
        let data = try Data(contentsOf: Self.protocolFolder.appendingPathComponent("schemas/common.json"))
        let common = try JSONParser.parse(Array(data))
        let codes = common.objectValue?["$defs"]?.objectValue?["error_code"]?.objectValue?["enum"]?.arrayValue?.compactMap(\.stringValue)
        #expect(Set(codes ?? []) == Set(ErrorCode.allCases.map(\.rawValue)))
    }

    @Test("every operation the server knows has a request and a reply schema, and no schema names an unknown one")
    func operationsHaveSchemas() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.protocolFolder.appendingPathComponent("schemas").path)
        let requestOps = Set(files.filter { $0.hasSuffix(".request.json") }.map { String($0.dropLast(".request.json".count)) })
        let replyOps = Set(files.filter { $0.hasSuffix(".reply.json") }.map { String($0.dropLast(".reply.json".count)) })
        #expect(requestOps == Set(PortierService.operations))
        #expect(replyOps == Set(PortierService.operations))
    }

    @Test("every operation's request schema lists exactly the params keys its params type reads (the registry's paramKeys)")
    func paramsMatchSchemas() throws {
        for operation in PortierService.registry {
            let data = try Data(contentsOf: Self.protocolFolder.appendingPathComponent("schemas/\(operation.name).request.json"))
            let schema = try JSONParser.parse(Array(data))
            let params = schema.objectValue?["properties"]?.objectValue?["params"]?.objectValue
            let documented = Set(params?["properties"]?.objectValue?.keys.map { $0 } ?? [])
            #expect(documented == operation.paramKeys, "\(operation.name): schema \(documented.sorted()), code \(operation.paramKeys.sorted())")
            // Keys beyond those are refused, in the schema as in the code.
            #expect(params?["additionalProperties"] == .bool(false) || params?["maxProperties"] == .int(0), "\(operation.name)")
        }
    }
}
