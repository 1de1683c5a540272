// The NetSuite emulator's public nested types: its options and the counters tests assert on.
// The emulator itself is in NetSuiteEmulator.swift.
public import Foundation

extension NetSuiteEmulator {
    public enum AmbiguousReading: Sendable { case earlier, later }

    public struct Options: Sendable {
        public var accountID: String
        public var timeZone: TimeZone
        public var consumerKey: String
        public var consumerSecret: String
        public var tokenID: String
        public var tokenSecret: String
        public var concurrencyLimit: Int
        public var responseDelay: Duration
        public var rowCap: Int
        public var ambiguousReading: AmbiguousReading
        /// How far `oauth_timestamp` may be from the emulator's clock.
        public var timestampTolerance: TimeInterval

        /// The Token-Based Authentication secrets the emulator knows.
        public struct Credentials: Sendable {
            public var consumerKey: String
            public var consumerSecret: String
            public var tokenID: String
            public var tokenSecret: String

            public init(consumerKey: String = "ck-emulator", consumerSecret: String = "cs-emulator",
                        tokenID: String = "token-emulator", tokenSecret: String = "ts-emulator") {
                self.consumerKey = consumerKey
                self.consumerSecret = consumerSecret
                self.tokenID = tokenID
                self.tokenSecret = tokenSecret
            }
        }

        public init(accountID: String = "1234567_SB1", timeZone: TimeZone, credentials: Credentials = Credentials(),
                    concurrencyLimit: Int = 5, responseDelay: Duration = .zero, rowCap: Int = 100_000,
                    ambiguousReading: AmbiguousReading = .earlier, timestampTolerance: TimeInterval = 300) {
            self.accountID = accountID
            self.timeZone = timeZone
            self.consumerKey = credentials.consumerKey
            self.consumerSecret = credentials.consumerSecret
            self.tokenID = credentials.tokenID
            self.tokenSecret = credentials.tokenSecret
            self.concurrencyLimit = concurrencyLimit
            self.responseDelay = responseDelay
            self.rowCap = rowCap
            self.ambiguousReading = ambiguousReading
            self.timestampTolerance = timestampTolerance
        }
    }

    /// Counters for assertions.
    public struct Stats: Sendable {
        public var requests = 0
        public var succeeded = 0
        public var maxObservedConcurrency = 0
        public var concurrencyRejections = 0
        public var authenticationFailures = 0
        /// Every SuiteQL text received, in order.
        public var queries: [String] = []
    }
}
