// Placeholders of the store's SQL (SQLite spelling) in PostgreSQL's spelling.
import Testing
@testable import PostgresStore
import Store

@Suite("PostgreSQL placeholder translation")
struct PlaceholderTranslationTests {
    @Test func barePlaceholdersAreNumberedInOrder() {
        #expect(PlaceholderTranslation.translate("SELECT a FROM t WHERE b = ? AND c > ? LIMIT ?")
            == "SELECT a FROM t WHERE b = $1 AND c > $2 LIMIT $3")
    }

    @Test func numberedPlaceholdersKeepTheirNumberAndBareOnesFollowTheLargest() {
        #expect(PlaceholderTranslation.translate("WHERE s = ?1 AND n <= ?2 AND x = ?1 LIMIT ?3")
            == "WHERE s = $1 AND n <= $2 AND x = $1 LIMIT $3")
        // SQLite: a bare ? after ?4 is ?5.
        #expect(PlaceholderTranslation.translate("?4, ?") == "$4, $5")
    }

    @Test func quotesAndCommentsAreLeftAlone() {
        #expect(PlaceholderTranslation.translate("SELECT '?', 'it''s ?', \"q?\" -- why?\nFROM t WHERE a = ?")
            == "SELECT '?', 'it''s ?', \"q?\" -- why?\nFROM t WHERE a = $1")
    }

    @Test func textValuesNeverCarryNul() {
        #expect(Store.SQLValue.text("a\u{0}b").postgresText == "a\u{FFFD}b")
        #expect(Store.SQLValue.integer(-7).postgresText == "-7")
        #expect(Store.SQLValue.null.postgresText == nil)
    }
}
