// The SuiteQL texts deltahook sends (docs/DESIGN.md §3; provider-wire-facts §2.2). Dates cross the wire only as
// `TO_CHAR(col, 'YYYY-MM-DD HH24:MI:SS')` readings and `TO_TIMESTAMP('…', 'YYYY-MM-DD HH24:MI:SS')` literals in
// the account's time zone, so the user's date-format preference never matters.

/// Builds SuiteQL for one object.
public struct NetSuiteSQL: Sendable, Hashable {
    public static let timestampFormat = "YYYY-MM-DD HH24:MI:SS"
    /// Alias of the TO_CHAR reading of `lastmodifieddate` (SuiteQL lower-cases aliases anyway).
    public static let cursorAlias = "lastmodified_local"
    static let deletedAlias = "deleted_local"
    static let tranDateAlias = "trandate_iso"
    static let dueDateAlias = "duedate_iso"

    /// SuiteQL table (`customer`, `transaction`, …).
    public let table: String
    /// `transaction.type` filter, e.g. `CustInvc`.
    public let recordType: String?
    /// Columns to fetch besides `id`; nil = every column (`table.*`).
    public let fields: [String]?
    /// The model decides extra TO_CHAR columns (invoice dates).
    public let model: String

    public init(table: String, recordType: String?, fields: [String]?, model: String) {
        self.table = table.lowercased()
        self.recordType = recordType
        self.fields = fields
        self.model = model
    }

    /// A SQL string literal with quotes doubled.
    public static func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    static func timestamp(_ local: String) -> String {
        "TO_TIMESTAMP(\(quote(local)), \(quote(timestampFormat)))"
    }

    /// The keyset condition `(col > T OR (col = T AND idcol > N))` with T a local reading.
    static func keyset(dateColumn: String, idColumn: String, local: String, id: Int64) -> String {
        let t = timestamp(local)
        return "(\(dateColumn) > \(t) OR (\(dateColumn) = \(t) AND \(idColumn) > \(id)))"
    }

    var selectList: String {
        var columns: [String]
        if let fields {
            columns = ["\(table).id"]
            for field in fields.map({ $0.lowercased() }) where field != "id" && !columns.contains("\(table).\(field)") {
                columns.append("\(table).\(field)")
            }
        } else {
            columns = ["\(table).*"]
        }
        columns.append("TO_CHAR(\(table).lastmodifieddate, \(Self.quote(Self.timestampFormat))) AS \(Self.cursorAlias)")
        if model == "invoice" {
            columns.append("TO_CHAR(\(table).trandate, 'YYYY-MM-DD') AS \(Self.tranDateAlias)")
            columns.append("TO_CHAR(\(table).duedate, 'YYYY-MM-DD') AS \(Self.dueDateAlias)")
        }
        return columns.joined(separator: ", ")
    }

    var typeFilter: String? { recordType.map { "\(table).type = \(Self.quote($0))" } }

    /// The delta query: `conditions` are the bound conditions (lower bound or keyset, window end).
    public func delta(conditions: [String]) -> String {
        let all = [typeFilter].compactMap { $0 } + conditions
        let whereClause = all.isEmpty ? "" : " WHERE " + all.joined(separator: " AND ")
        return "SELECT \(selectList) FROM \(table)\(whereClause) ORDER BY \(table).lastmodifieddate, \(table).id"
    }

    /// The reconciliation id listing, keyset on `id`.
    public func ids(after id: Int64?) -> String {
        let all = [typeFilter].compactMap { $0 } + (id.map { ["\(table).id > \($0)"] } ?? [])
        let whereClause = all.isEmpty ? "" : " WHERE " + all.joined(separator: " AND ")
        return "SELECT \(table).id FROM \(table)\(whereClause) ORDER BY \(table).id"
    }

    /// The `DeletedRecord` query for this object's record types.
    public func deletions(conditions: [String]) -> String {
        let types = NetSuiteSQL.deletedRecordTypes(table: table, recordType: recordType)
        let typeCondition = types.count == 1
            ? "deletedrecord.type = \(Self.quote(types[0]))"
            : "deletedrecord.type IN (" + types.map(Self.quote).joined(separator: ", ") + ")"
        let all = [typeCondition] + conditions
        return "SELECT deletedrecord.recordid, deletedrecord.type, TO_CHAR(deletedrecord.deleteddate, "
            + "\(Self.quote(Self.timestampFormat))) AS \(Self.deletedAlias) FROM deletedrecord WHERE "
            + all.joined(separator: " AND ") + " ORDER BY deletedrecord.deleteddate, deletedrecord.recordid"
    }

    /// `DeletedRecord.type` values for a table (record type ids as NetSuite's record browser names them).
    /// Unverified against a live account (provider-wire-facts §2.6 lists only the column names); a table not
    /// listed here is assumed to be its own record type.
    public static func deletedRecordTypes(table: String, recordType: String?) -> [String] {
        switch table.lowercased() {
        case "transaction":
            if let recordType {
                return [transactionRecordTypes[recordType] ?? recordType.lowercased()]
            }
            return Array(Set(transactionRecordTypes.values)).sorted()
        case "item":
            return itemRecordTypes
        default:
            return [table.lowercased()]
        }
    }

    /// `transaction.type` codes → record type ids.
    static let transactionRecordTypes: [String: String] = [
        "CustInvc": "invoice", "CashSale": "cashsale", "CustCred": "creditmemo", "CustPymt": "customerpayment",
        "CustDep": "customerdeposit", "CustRfnd": "customerrefund", "Estimate": "estimate", "SalesOrd": "salesorder",
        "RtnAuth": "returnauthorization", "Opprtnty": "opportunity", "VendBill": "vendorbill",
        "VendCred": "vendorcredit", "VendPymt": "vendorpayment", "PurchOrd": "purchaseorder",
        "Journal": "journalentry", "ItemShip": "itemfulfillment", "ItemRcpt": "itemreceipt",
        "TrnfrOrd": "transferorder", "InvAdjst": "inventoryadjustment", "ExpRept": "expensereport",
        "Check": "check", "Deposit": "deposit",
    ]

    static let itemRecordTypes = [
        "assemblyitem", "descriptionitem", "discountitem", "downloaditem", "giftcertificateitem", "inventoryitem",
        "itemgroup", "kititem", "markupitem", "noninventoryitem", "otherchargeitem", "paymentitem",
        "serviceitem", "subtotalitem",
    ]
}
