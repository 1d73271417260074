<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use SuiteX\EventBackbone\Worker\DatabaseErrors;

/** The PHP worker tells row errors from database failures exactly as the Rust worker does. */
final class DatabaseErrorsTest extends TestCase
{
    public function test_the_row_data_codes_are_the_rust_workers(): void
    {
        $rust = file_get_contents(dirname(__DIR__, 3).'/sdk/src/store/errors.rs');
        $this->assertSame(1, preg_match('/const ROW_DATA: \[\(u16, &str\); (\d+)\] = \[(.*?)\n\];/s', $rust, $m), 'ROW_DATA is in sdk/src/store/errors.rs');
        preg_match_all('/\((\d+), "/', $m[2], $codes);
        $rustCodes = array_map('intval', $codes[1]);
        $this->assertCount((int) $m[1], $rustCodes);
        $this->assertSame($rustCodes, array_keys(DatabaseErrors::ROW_DATA_CODES));
    }

    public function test_the_connection_scoped_codes_and_classes_are_the_rust_workers(): void
    {
        $rust = file_get_contents(dirname(__DIR__, 3).'/sdk/src/store/errors.rs');
        $this->assertSame(1, preg_match('/const CONNECTION_SCOPED: \[\(u16, FailureClass, &str\); (\d+)\] = \[(.*?)\n\];/s', $rust, $m), 'CONNECTION_SCOPED is in sdk/src/store/errors.rs');
        preg_match_all('/\(\s*(\d+),\s*FailureClass::(\w+),\s*"/', $m[2], $rows, PREG_SET_ORDER);
        $this->assertCount((int) $m[1], $rows);
        $snake = fn (string $camel) => strtolower(preg_replace('/(?<!^)[A-Z]/', '_$0', $camel));
        $rustList = [];
        foreach ($rows as [, $code, $class]) {
            $rustList[(int) $code] = $snake($class);
        }
        $this->assertSame($rustList, DatabaseErrors::CONNECTION_SCOPED_CODES);
    }

    public function test_a_session_error_replaces_the_connection_and_others_do_not(): void
    {
        $revoked = new \PDOException('SQLSTATE[42000]: 1142 INSERT command denied');
        $revoked->errorInfo = ['42000', 1142, 'INSERT command denied'];
        $this->assertSame(['access', true], DatabaseErrors::failure($revoked));
        $gone = new \PDOException('SQLSTATE[HY000] [2002] Connection refused');
        $this->assertSame(['connection_lost', true], DatabaseErrors::failure($gone));
        $missing = new \PDOException('SQLSTATE[42S02]: 1146 Table doesn\'t exist');
        $missing->errorInfo = ['42S02', 1146, "Table doesn't exist"];
        $this->assertSame(['database', false], DatabaseErrors::failure($missing));
        $this->assertSame(['service', false], DatabaseErrors::failure(new \RuntimeException('Pub/Sub unavailable')));
    }

    public function test_only_listed_codes_are_about_the_row(): void
    {
        $this->assertSame(DatabaseErrors::DUPLICATE, DatabaseErrors::classify(1062));
        $this->assertSame(DatabaseErrors::DEADLOCK, DatabaseErrors::classify(1213));
        $this->assertSame(DatabaseErrors::ROW_DATA, DatabaseErrors::classify(1406));
        // Access denied, a revoked grant, a read-only failover, a full disk, no connection at all.
        foreach ([1045, 1142, 1290, 1021, 2002, 2006, null] as $code) {
            $this->assertSame(DatabaseErrors::TRANSIENT, DatabaseErrors::classify($code), (string) $code);
        }
        $pdo = new \PDOException('SQLSTATE[22001]: String data, right truncated: 1406 Data too long');
        $pdo->errorInfo = ['22001', 1406, 'Data too long'];
        $this->assertSame(1406, DatabaseErrors::code(new \RuntimeException('wrapped', 0, $pdo)));
    }
}
