<?php

namespace SuiteX\EventBackbone\Worker;

/**
 * Which database errors are about the row being written, and which are about everything else
 * — the same rule, and the same list, as the Rust worker's (sdk/src/store/errors.rs; a test
 * compares the two).
 *
 * The rule is inverted on purpose: a row is poison only for an error that is about *that row's
 * data*, listed one by one. Every other error, and every error of a kind not listed, is a
 * failure of the database (a rotated password, a revoked grant, a full disk, a failover, a
 * killed query): it is retried, and never costs the event a delivery attempt.
 *
 * Some of those failures are about the session too (CONNECTION_SCOPED_CODES, the Rust list
 * `CONNECTION_SCOPED`): a database-level grant reaches an open session only at its next USE, a
 * killed session is gone, a read-only old primary stays read-only, a password is checked only at
 * login. After one of them (or an error without a server error number: the connection itself
 * failed) the worker purges the connection, so the retry logs in afresh.
 */
final class DatabaseErrors
{
    public const ROW_DATA = 'row_data';

    public const DUPLICATE = 'duplicate';

    public const DEADLOCK = 'deadlock';

    public const TRANSIENT = 'transient';

    /** MySQL / MariaDB error numbers that are about the row being written. */
    public const ROW_DATA_CODES = [
        1048 => 'ER_BAD_NULL_ERROR: a NOT NULL column got NULL',
        1153 => 'ER_NET_PACKET_TOO_LARGE: the row does not fit max_allowed_packet',
        1264 => 'ER_WARN_DATA_OUT_OF_RANGE: a number out of its column\'s range (strict mode)',
        1265 => 'WARN_DATA_TRUNCATED: a value truncated to fit its column (strict mode)',
        1292 => 'ER_TRUNCATED_WRONG_VALUE: e.g. an invalid DATETIME',
        1300 => 'ER_INVALID_CHARACTER_STRING: bytes that are not valid in the column\'s charset',
        1366 => 'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: e.g. a string that is not valid utf8mb4',
        1367 => 'ER_ILLEGAL_VALUE_FOR_TYPE: a value the column\'s type cannot parse',
        1406 => 'ER_DATA_TOO_LONG: a string longer than its column',
        1411 => 'ER_WRONG_VALUE_FOR_TYPE: a value a conversion function refuses',
        1690 => 'ER_DATA_OUT_OF_RANGE: a computed value out of range',
        3140 => 'ER_INVALID_JSON_TEXT (MySQL 8): payload or metadata is not valid JSON',
        3141 => 'ER_INVALID_JSON_TEXT_IN_PARAM (MySQL 8): the same, in a function argument',
        3146 => 'ER_INVALID_TYPE_FOR_JSON (MySQL 8): a value that cannot be a JSON document',
        3157 => 'ER_JSON_DOCUMENT_TOO_DEEP (MySQL 8): nested deeper than 100 levels',
        3819 => 'ER_CHECK_CONSTRAINT_VIOLATED (MySQL 8): the row fails a CHECK constraint',
        4025 => 'ER_CONSTRAINT_FAILED (MariaDB): the row fails a CHECK, e.g. json_valid() on a JSON column',
    ];

    /**
     * MySQL / MariaDB error numbers after which the connection is never used again, with the
     * failure class an operator sees — the same list, in the same order, as the Rust worker's.
     */
    public const CONNECTION_SCOPED_CODES = [
        1044 => 'access',
        1142 => 'access',
        1143 => 'access',
        1227 => 'access',
        1045 => 'authentication',
        1698 => 'authentication',
        1820 => 'authentication',
        1862 => 'authentication',
        1290 => 'read_only',
        1836 => 'read_only',
        1792 => 'read_only',
        1040 => 'connection_limit',
        1203 => 'connection_limit',
        1226 => 'connection_limit',
        1053 => 'connection_lost',
        1317 => 'connection_lost',
        1927 => 'connection_lost',
        2006 => 'connection_lost',
        2013 => 'connection_lost',
        4031 => 'connection_lost',
    ];

    /**
     * The failure class of a database error (`access`, `read_only` …, `database` for the rest)
     * and whether the connection that saw it must be replaced.
     *
     * @return array{0: string, 1: bool}
     */
    public static function failure(\Throwable $e): array
    {
        $code = self::code($e);
        if ($code !== null && isset(self::CONNECTION_SCOPED_CODES[$code])) {
            return [self::CONNECTION_SCOPED_CODES[$code], true];
        }
        if (self::isPdo($e) && ($code === null || ($code >= 2000 && $code < 3000))) {
            // No server error number, or a client library one (CR_*, 2000-2999): the
            // connection itself failed (refused, reset, gone away).
            return ['connection_lost', true];
        }

        return [self::isPdo($e) ? 'database' : 'service', false];
    }

    private static function isPdo(\Throwable $e): bool
    {
        for (; $e !== null; $e = $e->getPrevious()) {
            if ($e instanceof \PDOException) {
                return true;
            }
        }

        return false;
    }

    /** The class of a MySQL / MariaDB error number (null: no server error number at all). */
    public static function classify(?int $code): string
    {
        return match (true) {
            $code === 1062 => self::DUPLICATE,
            $code === 1213 => self::DEADLOCK,
            $code !== null && isset(self::ROW_DATA_CODES[$code]) => self::ROW_DATA,
            default => self::TRANSIENT,
        };
    }

    /**
     * The server's error number carried by a PDO or query exception, if any: a statement's
     * (errorInfo), or a connection attempt's (PDO gives the number as the exception's code).
     */
    public static function code(\Throwable $e): ?int
    {
        for (; $e !== null; $e = $e->getPrevious()) {
            if (! $e instanceof \PDOException) {
                continue;
            }
            $info = $e->errorInfo;
            if (is_array($info) && isset($info[1]) && is_int($info[1])) {
                return $info[1];
            }
            if ($info === null && is_int($e->getCode()) && $e->getCode() > 0) {
                return $e->getCode();
            }
        }

        return null;
    }
}
