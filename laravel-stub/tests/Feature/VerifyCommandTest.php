<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Models\EventStore;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;
use Tests\Support\Pipeline;

/**
 * `php artisan events:verify` recomputes the ledger's hash chain (migration 0003's twin), agrees
 * with `suitex-events verify`, and names the seq an admin's change breaks.
 */
final class VerifyCommandTest extends LaravelTestCase
{
    private function verify(): array
    {
        [$code, $out, $err] = Harness::artisan(['events:verify', '--json'], $this->env(['DB_EVENT_STORE_ROLE' => 'reader']));
        $report = json_decode(trim($out), true);
        $this->assertIsArray($report, "events:verify printed no JSON:\n$out\n$err");

        return [$code, $report];
    }

    public function test_eloquent_and_hand_written_rows_are_chained_and_a_changed_row_is_named(): void
    {
        $this->migrate();
        $this->boot();
        for ($i = 0; $i < 6; $i++) {
            EventStore::create($this->event(['aggregate_id' => 'C-'.($i % 2), 'payload' => ['n' => $i, 'amount' => 12.5, 'name' => 'Zoë']]));
        }
        $pdo = Harness::pdo($this->eventStore);
        $pdo->exec("INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, occurred_at) "
            ."VALUES (42, UUID(), 'customer', 'C-9', 'customer.corrected', '{\"by\": \"hand\"}', UTC_TIMESTAMP(6))");

        [$code, $report] = $this->verify();
        $this->assertSame(0, $code, json_encode($report));
        $this->assertTrue($report['intact']);
        $this->assertSame(7, $report['rows']);
        $this->assertSame(EventStore::where('seq', 7)->value('row_hash'), $report['head_hash']);

        // The Rust implementation agrees on the same head.
        $bin = Pipeline::required('SUITEX_EVENTS_BIN', 'the suitex-events binary');
        $proc = proc_open([$bin, 'verify', '--json'], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, array_merge(Harness::baseEnv(), $this->env(['DB_EVENT_STORE_ROLE' => 'reader'])));
        $rust = json_decode(stream_get_contents($pipes[1]), true);
        $err = stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($proc), $err);
        $this->assertSame($report['head_hash'], $rust['head_hash']);

        // An admin drops the append-only trigger and changes an amount.
        $pdo->exec('DROP TRIGGER event_store_no_update');
        $pdo->exec("UPDATE event_store SET payload = '{\"n\": 4, \"amount\": 99.5, \"name\": \"Zoë\"}' WHERE seq = 5");
        [$code, $report] = $this->verify();
        $this->assertSame(1, $code);
        $this->assertFalse($report['intact']);
        $this->assertSame(['mismatch', 5], [$report['first_break']['kind'], $report['first_break']['seq']]);
        $this->assertSame(4, $report['rows'], 'seq 1 to 4 are intact');
    }
}
