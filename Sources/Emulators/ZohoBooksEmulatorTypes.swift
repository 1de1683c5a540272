// Types of the Zoho Books emulator: options, stored records, faults and the request log.
public import Foundation
public import Core

extension ZohoBooksEmulator {
    public struct Options: Sendable {
        /// The data center this instance plays (`com`, `eu`, …): a refresh token is valid only at the instance
        /// that issued it, as a Zoho refresh token works only at its own accounts server.
        public var dataCenter = "com"
        public var organizationID = "10234695"
        public var clientID = "1000.EMULATORCLIENT"
        public var clientSecret = "emulator-client-secret"
        public var refreshToken = "1000.emulator.refresh"
        /// Access token lifetime (Zoho: one hour).
        public var tokenLifetime: TimeInterval = 3600
        /// Return a new refresh token with each grant (Zoho does not document this; tests of rotation set it).
        public var rotateRefreshTokens = false
        /// Requests per minute per organization (Zoho: 100) and per day (Zoho: 1,000 on the free plan).
        public var perMinuteLimit = 100
        public var perDayLimit = 1000
        /// The organization's UTC offset: times are rendered as `2026-11-29T10:15:30+0530`.
        public var utcOffsetSeconds = 19_800
        /// The largest `per_page` honoured (Zoho: 200); a larger one is served as this many.
        public var maxPerPage = 200

        public init() {}
    }

    /// One stored record of a module.
    public struct Record: Sendable, Hashable {
        public var id: String
        public var fields: JSONObject
        public var createdAt: Date
        public var modifiedAt: Date
    }

    /// What the next list requests do instead of (or before) answering normally, one per request.
    public enum Fault: Sendable {
        case none
        /// Answer this status with a Zoho error body.
        case status(Int)
        /// Run this before answering (change records between two page requests: mid-scan updates).
        case hook(@Sendable (ZohoBooksEmulator) -> Void)
        /// Expire every access token before answering (a token that dies mid-scan).
        case expireTokens
        /// Spoil the connection.
        case connection(ConnectionFault)
    }

    public struct LoggedRequest: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var authorization: String?
        public var status: Int
    }
}
