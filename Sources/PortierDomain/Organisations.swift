/// Validation of organisation details (R-ORG-2).
public enum OrganisationRules {
    /// A Dutch Chamber of Commerce (KvK) number: exactly 8 digits.
    public static func kvkNumber(_ raw: String) throws(InvalidInput) -> String {
        let trimmed = raw.trimmingWhitespace()
        guard trimmed.utf8.count == 8, trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw .badRequest("kvk_number must be exactly 8 digits")
        }
        return trimmed
    }

    /// A country as an ISO 3166-1 alpha-2 code, upper-cased.
    public static func country(_ raw: String) throws(InvalidInput) -> String {
        let code = raw.trimmingWhitespace().uppercased()
        guard code.utf8.count == 2, code.utf8.allSatisfy({ $0 >= 65 && $0 <= 90 }) else {
            throw .badRequest("country must be a two-letter ISO 3166-1 code, e.g. NL")
        }
        return code
    }

    /// An organisation's name: 1 to 200 characters a person can read (R-SEC-3, `DisplayNames`).
    public static func name(_ raw: String) throws(InvalidInput) -> String {
        try DisplayNames.validate(raw, allowEmpty: false)
    }
}
