import BlockingIO
import CLibPQ
import Foundation

/// One blocking connection to PostgreSQL over libpq.
///
/// Blocking: call it from a `DedicatedThread`, never from the cooperative pool. Not
/// thread-safe: one owner at a time. Statements are parameterized only
/// (`PostgresQuery`). A broken connection surfaces as a retriable error and the next
/// statement connects again.
public final class PostgresConnection {
    /// The URL with its password masked, for logs and errors.
    public let redactedURL: String
    private let url: String
    private let connectTimeoutSeconds: Int
    private var connection: OpaquePointer?

    /// `url` is a libpq URI, `postgresql://user:password@host:port/db?sslmode=...`;
    /// every libpq parameter in it is honoured. Connects at once.
    /// `settings`: server settings for the session (libpq `options`, `-c NAME=VALUE`);
    /// an `options` parameter in the URL replaces them.
    public init(url: String, connectTimeoutSeconds: Int = 5, applicationName: String = "wms-worker",
                settings: KeyValuePairs<String, String> = [:]) throws(PostgresError) {
        self.url = url
        self.redactedURL = Self.redact(url)
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.applicationName = applicationName
        self.options = settings.map { "-c \($0.key)=\($0.value)" }.joined(separator: " ")
        try Self.validate(url: url, redacted: redactedURL)
        try connectIfNeeded()
    }

    private let applicationName: String
    private let options: String

    deinit { disconnect() }

    public var isConnected: Bool { connection != nil }

    public func disconnect() {
        if let connection { PQfinish(connection) }
        connection = nil
    }

    // MARK: Statements

    /// Runs one parameterized statement and returns its rows.
    @discardableResult
    public func query(_ query: PostgresQuery) throws(PostgresError) -> PostgresRows {
        assert(DedicatedThread.isCurrent, "blocking PostgreSQL call off a DedicatedThread")
        let connection = try connectIfNeeded()
        let result = Self.withParameters(query.binds) { count, values, lengths, formats in
            PQexecParams(connection, query.sql, count, nil, values, lengths, formats, 0)
        }
        return try consume(result, connection: connection)
    }

    /// Runs several statements separated by semicolons, without parameters: for
    /// migrations and other SQL that ships with the program.
    public func execute(script: String) throws(PostgresError) {
        let connection = try connectIfNeeded()
        try consume(PQexec(connection, script), connection: connection)
    }

    /// Runs `body` between BEGIN and COMMIT; any error thrown rolls back and is
    /// rethrown. A COMMIT that fails leaves nothing committed, except when the
    /// connection breaks during it (`connectionLost`): then the outcome is unknown.
    @discardableResult
    public func withTransaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try query("BEGIN")
        let value: T
        do {
            value = try body(self)
        } catch {
            rollback()
            throw error
        }
        do {
            try query("COMMIT")
        } catch {
            rollback()
            throw error
        }
        return value
    }

    private func rollback() {
        guard let connection, PQtransactionStatus(connection) != PQTRANS_IDLE else { return }
        // A failed ROLLBACK means the connection is gone, which ends the transaction too.
        if (try? query("ROLLBACK")) == nil { disconnect() }
    }

    /// Loads rows with COPY FROM STDIN: the fastest bulk path, one round trip for
    /// any number of rows. Table and column names are quoted identifiers; values
    /// are escaped for COPY's text format (nil is NULL).
    @discardableResult
    public func copy(into table: String, columns: [String], rows: some Sequence<[String?]>) throws(PostgresError) -> Int {
        let connection = try connectIfNeeded()
        let sql = "COPY \(PostgresQuery.quoteIdentifier(table)) (\(columns.map(PostgresQuery.quoteIdentifier).joined(separator: ", "))) FROM STDIN"
        let start = PQexec(connection, sql)
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            try consume(start, connection: connection)
            throw .unexpectedResult("COPY did not start")
        }
        PQclear(start)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 16)
        var sendFailed = false
        func flush() {
            guard !buffer.isEmpty, !sendFailed else { return }
            let status = buffer.withUnsafeBufferPointer { raw in
                raw.withMemoryRebound(to: CChar.self) { PQputCopyData(connection, $0.baseAddress, Int32($0.count)) }
            }
            sendFailed = status != 1
            buffer.removeAll(keepingCapacity: true)
        }
        for row in rows {
            precondition(row.count == columns.count, "COPY row has \(row.count) values for \(columns.count) columns")
            for (index, value) in row.enumerated() {
                if index > 0 { buffer.append(UInt8(ascii: "\t")) }
                Self.appendCopyText(value, to: &buffer)
            }
            buffer.append(UInt8(ascii: "\n"))
            if buffer.count >= 1 << 16 { flush() }
        }
        flush()
        if sendFailed || PQputCopyEnd(connection, nil) != 1 {
            throw lost(connection)
        }
        return try consume(PQgetResult(connection), connection: connection).affectedRows
    }

    // MARK: Connection

    @discardableResult
    private func connectIfNeeded() throws(PostgresError) -> OpaquePointer {
        if let connection {
            if PQstatus(connection) == CONNECTION_OK { return connection }
            disconnect()
        }
        // Defaults first: the URL's own parameters, expanded from `dbname`, override them.
        // Keepalives and a TCP user timeout: a half-open connection fails within
        // about 30 s instead of blocking the worker's thread for good.
        let keywords = ["connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "tcp_user_timeout", "options", "dbname"]
        let values = [String(connectTimeoutSeconds), applicationName, "1", "10", "5", "3", "30000", options, url]
        let connection = Self.withCStrings(keywords) { keys in
            Self.withCStrings(values) { vals in PQconnectdbParams(keys, vals, 1) }
        }
        guard let connection else { throw .connection("cannot allocate a libpq connection", retriable: true) }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.errorMessage(connection)
            PQfinish(connection)
            throw .connection("\(redactedURL): \(Self.scrub(message, of: url))", retriable: Self.isTransientConnectFailure(message))
        }
        // Notices ("relation already exists, skipping") would go to stderr; they are not errors.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        self.connection = connection
        return connection
    }

    /// Reads a result: rows when it succeeded, the server's error with its SQLSTATE
    /// when it did not, `connectionLost` when there is no result. Frees it.
    @discardableResult
    private func consume(_ result: OpaquePointer?, connection: OpaquePointer) throws(PostgresError) -> PostgresRows {
        guard let result else { throw lost(connection) }
        defer { PQclear(result) }
        // Drain what follows (PQexec of a script can leave more results).
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return Self.copyRows(result)
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
            guard let state = Self.field(result, "C") else { throw lost(connection) }
            throw .server(sqlState: SQLState(rawValue: state), message: Self.field(result, "M") ?? "", detail: Self.field(result, "D"))
        case let status:
            if PQstatus(connection) != CONNECTION_OK { throw lost(connection) }
            throw .unexpectedResult(String(cString: PQresStatus(status)))
        }
    }

    private func lost(_ connection: OpaquePointer) -> PostgresError {
        let message = Self.errorMessage(connection)
        disconnect()
        return .connectionLost(message.isEmpty ? "no result" : message)
    }

    private static func copyRows(_ result: OpaquePointer) -> PostgresRows {
        let columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        let index = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let rows = (0..<Int(PQntuples(result))).map { row in
            PostgresRow(columnIndex: index, values: (0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1
                    ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            })
        }
        return PostgresRows(columns: columns, rows: rows, affectedRows: Int(String(cString: PQcmdTuples(result))) ?? 0)
    }

    private static func field(_ result: OpaquePointer, _ code: Character) -> String? {
        PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
    }

    private static func errorMessage(_ connection: OpaquePointer) -> String {
        String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The server said no to these credentials or this database: waiting will not help.
    private static func isTransientConnectFailure(_ message: String) -> Bool {
        let permanent = ["password authentication failed", "does not exist", "no password supplied",
                         "pg_hba.conf", "authentication failed", "does not support SSL", "SSL is not enabled", "invalid sslmode"]
        return !permanent.contains { message.contains($0) }
    }

    private static func validate(url: String, redacted: String) throws(PostgresError) {
        guard url.hasPrefix("postgresql://") || url.hasPrefix("postgres://") else {
            throw .invalidURL("expected postgresql://user:password@host:port/database, got \(redacted)")
        }
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(url, &error) else {
            let detail = error.map { String(cString: $0) } ?? "unparseable"
            PQfreemem(error)
            throw .invalidURL("\(scrub(detail.trimmingCharacters(in: .whitespacesAndNewlines), of: url)) in \(redacted)")
        }
        PQconninfoFree(options)
    }

    /// Where passwords sit in `url`: between `user:` and the last `@`, and after
    /// every `…password=` parameter; in order.
    private static func passwordRanges(in url: String) -> [Range<String.Index>] {
        var ranges: [Range<String.Index>] = []
        if let scheme = url.range(of: "://"), let at = url.range(of: "@", options: .backwards), scheme.upperBound <= at.lowerBound,
           let colon = url[scheme.upperBound..<at.lowerBound].firstIndex(of: ":") {
            ranges.append(url.index(after: colon)..<at.lowerBound)
        }
        // Parameters after the user's password: ranges never overlap.
        var searchFrom = ranges.first?.upperBound ?? url.startIndex
        while let parameter = url.range(of: "password=", options: .caseInsensitive, range: searchFrom..<url.endIndex) {
            let end = url[parameter.upperBound...].firstIndex(of: "&") ?? url.endIndex
            ranges.append(parameter.upperBound..<end)
            searchFrom = end
        }
        return ranges
    }

    /// The URL with every password replaced by `***`.
    public static func redact(_ url: String) -> String {
        var redacted = url
        // From the end back, so that earlier ranges stay valid.
        for range in passwordRanges(in: url).reversed() {
            redacted.replaceSubrange(range, with: "***")
        }
        return redacted
    }

    /// libpq's messages can quote parts of the URL (a bad percent-encoding, a host
    /// name cut from a password holding an `@`): every piece of a password in
    /// `url` is masked in `text`.
    static func scrub(_ text: String, of url: String) -> String {
        // Pieces too, as libpq may split a password at `@`, `:` or `/`, and its
        // decoded form.
        var pieces: [String] = []
        for range in passwordRanges(in: url) {
            let secret = String(url[range])
            pieces.append(secret)
            pieces.append(secret.removingPercentEncoding ?? "")
            pieces += secret.split(whereSeparator: { "@:/?&".contains($0) }).map(String.init)
        }
        var text = text
        for piece in Set(pieces).filter({ $0.count >= 3 }).sorted(by: { $0.count > $1.count }) {
            text = text.replacingOccurrences(of: piece, with: "***")
        }
        return text
    }

    /// Whether libpq can parse `url`, without connecting: settings are checked before
    /// anything connects.
    public static func checkURL(_ url: String) throws(PostgresError) {
        try validate(url: url, redacted: redact(url))
    }

    // MARK: C plumbing

    private static func appendCopyText(_ value: String?, to buffer: inout [UInt8]) {
        guard let value else {
            buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")])
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\t"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case UInt8(ascii: "\n"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): buffer.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            default: buffer.append(byte)
            }
        }
    }

    /// Lays every parameter out in one buffer (text values NUL-terminated, as libpq
    /// reads them) and hands libpq the pointer, length and format arrays.
    private static func withParameters<R>(
        _ binds: [PostgresBind],
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) -> R {
        var storage: [UInt8] = []
        var offsets: [Int?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for bind in binds {
            switch bind {
            case .null:
                offsets.append(nil); lengths.append(0); formats.append(0)
            case .text(let text):
                offsets.append(storage.count)
                storage.append(contentsOf: text.utf8)
                storage.append(0)
                lengths.append(Int32(text.utf8.count)); formats.append(0)
            case .binary(let bytes):
                offsets.append(storage.count)
                storage.append(contentsOf: bytes)
                lengths.append(Int32(bytes.count)); formats.append(1)
            }
        }
        storage.append(0)  // never empty, so there is always a base address
        return storage.withUnsafeBufferPointer { raw in
            let base = UnsafeRawPointer(raw.baseAddress!)
            let pointers: [UnsafePointer<CChar>?] = offsets.map { $0.map { (base + $0).assumingMemoryBound(to: CChar.self) } }
            return pointers.withUnsafeBufferPointer { p in
                lengths.withUnsafeBufferPointer { l in
                    formats.withUnsafeBufferPointer { f in
                        body(Int32(binds.count), p.baseAddress, l.baseAddress, f.baseAddress)
                    }
                }
            }
        }
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
