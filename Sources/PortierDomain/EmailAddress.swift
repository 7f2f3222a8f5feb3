/// A syntactically valid email address, normalised for comparison (R-ENV-5).
///
/// `normalized` is trimmed and lower-cased: it is what uniqueness (R-ENV-6) and
/// domain claims compare. `display` keeps the caller's spelling, trimmed.
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    public let display: String
    public let normalized: String
    public let localPart: Substring
    /// The normalised domain, e.g. `acme.test`.
    public let domain: String

    public static let maximumLength = 254

    /// Parses and validates `raw`; the error message says what is wrong.
    public init(_ raw: String) throws(PortierError) {
        let trimmed = raw.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw .badRequest("email must not be empty") }
        guard trimmed.utf8.count <= Self.maximumLength else {
            throw .badRequest("email is longer than \(Self.maximumLength) characters")
        }
        let lower = trimmed.asciiLowercased()
        let parts = lower.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .badRequest("email must contain exactly one @: \(trimmed)") }
        let local = parts[0]
        guard Self.isValidLocalPart(local) else { throw .badRequest("email has an invalid local part: \(trimmed)") }
        let domain = try Domain(String(parts[1]))
        self.display = trimmed
        self.normalized = lower
        self.localPart = local
        self.domain = domain.name
    }

    public var description: String { display }

    /// Two addresses are the same when their normalised forms are (R-ENV-5).
    public static func == (a: Self, b: Self) -> Bool { a.normalized == b.normalized }
    public func hash(into hasher: inout Hasher) { hasher.combine(normalized) }

    /// The dot-atom form of RFC 5322: printable ASCII specials allowed, no leading,
    /// trailing or doubled dots. Quoted local parts are refused on purpose.
    static func isValidLocalPart(_ local: Substring) -> Bool {
        guard !local.isEmpty, local.utf8.count <= 64 else { return false }
        guard local.first != ".", local.last != ".", !local.contains("..") else { return false }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~.".utf8)
        return local.utf8.allSatisfy { allowed.contains($0) }
    }
}

/// A DNS domain name, lower-cased, as used in emails and domain claims.
public struct Domain: Sendable, Hashable {
    public let name: String

    public init(_ raw: String) throws(PortierError) {
        let name = raw.trimmingWhitespace().asciiLowercased()
        guard !name.isEmpty, name.utf8.count <= 253 else { throw .badRequest("domain is empty or too long: \(raw)") }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { throw .badRequest("domain needs at least two labels: \(raw)") }
        let letters = Set("abcdefghijklmnopqrstuvwxyz".utf8)
        let labelChars = letters.union("0123456789-".utf8)
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63,
                  label.first != "-", label.last != "-",
                  label.utf8.allSatisfy({ labelChars.contains($0) })
            else { throw .badRequest("domain has an invalid label: \(raw)") }
        }
        guard let tld = labels.last, tld.utf8.count >= 2, tld.utf8.allSatisfy({ letters.contains($0) || $0 == UInt8(ascii: "-") })
        else { throw .badRequest("domain has an invalid top-level label: \(raw)") }
        self.name = name
    }
}

extension StringProtocol {
    /// Trims spaces, tabs and line breaks from both ends.
    func trimmingWhitespace() -> String {
        var scalars = Substring(self).unicodeScalars[...]
        while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }

    /// Lower-cases ASCII letters only: email comparison must not depend on locale.
    func asciiLowercased() -> String {
        String(decoding: self.utf8.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
