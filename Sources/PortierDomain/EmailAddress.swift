/// A syntactically valid email address, normalised for comparison (R-ENV-5).
///
/// `normalized` is trimmed and lower-cased, its domain in ASCII form (R-ENV-9):
/// it is what uniqueness (R-ENV-6) and domain claims compare. `display` keeps
/// the caller's spelling, trimmed (an internationalised domain in ASCII form).
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    public let display: String
    public let normalized: String
    public let localPart: Substring
    /// The normalised domain, e.g. `acme.test`.
    public let domain: String

    public static let maximumLength = 254

    /// Parses and validates `raw`; the error message says what is wrong.
    public init(_ raw: String) throws(InvalidInput) {
        let trimmed = raw.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw .badRequest("email must not be empty") }
        guard trimmed.utf8.count <= Self.maximumLength else {
            throw .badRequest("email is longer than \(Self.maximumLength) characters")
        }
        let lower = trimmed.asciiLowercased()
        let parts = lower.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .badRequest("email must contain exactly one @: \(trimmed)") }
        let local = parts[0]
        guard local.utf8.allSatisfy({ $0 < 0x80 }) else {
            throw .badRequest("email's local part (before the @) must be ASCII; internationalised local parts are not supported: \(trimmed)")
        }
        guard Self.isValidLocalPart(local) else { throw .badRequest("email has an invalid local part: \(trimmed)") }
        let domain = try Domain(String(parts[1]))
        // An internationalised domain is kept in its ASCII form everywhere,
        // results included (R-ENV-9); an ASCII one keeps the caller's spelling.
        let mapped = domain.name != String(parts[1])
        self.display = mapped ? "\(trimmed.split(separator: "@", omittingEmptySubsequences: false)[0])@\(domain.name)" : trimmed
        self.normalized = "\(local)@\(domain.name)"
        guard normalized.utf8.count <= Self.maximumLength else {
            throw .badRequest("email is longer than \(Self.maximumLength) characters in its ASCII form")
        }
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

    /// Parses `raw`; a domain written in Unicode (or with A-labels) goes
    /// through IDNA 2008 / UTS #46 and keeps its ASCII form (R-ENV-9).
    public init(_ raw: String) throws(InvalidInput) {
        var name = raw.trimmingWhitespace().asciiLowercased()
        if IDNA.needsMapping(name) {
            guard name.unicodeScalars.count <= 253, let ascii = IDNA.asciiForm(name) else {
                throw .badRequest("domain is not a valid internationalised domain name (IDNA 2008): \(raw)")
            }
            name = ascii
        }
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
        // Letters, or an A-label (`xn--p1ai`, .рф), which has digits.
        guard let tld = labels.last, tld.utf8.count >= 2,
              tld.hasPrefix("xn--") || tld.utf8.allSatisfy({ letters.contains($0) || $0 == UInt8(ascii: "-") })
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
