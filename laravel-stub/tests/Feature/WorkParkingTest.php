<?php

namespace Tests\Feature;

use Tests\Support\Emulator;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;
use Tests\Support\Pipeline;

/**
 * `php artisan events:work` parks a dead letter's key exactly as the Rust worker does
 * (docs/architecture.md §2.5 "Parked keys"): the same scene is played on two pipelines and two
 * event stores, one worked by events:work and one by `suitex-events worker`, and the records
 * they leave are compared. Then each store's key is released by the *other* worker, since the
 * two share the tables in production.
 *
 * On the in-repo Pub/Sub fake (tests/pubsub-fake), which runs message ordering and the
 * dead-letter policy together as Pub/Sub does (the official emulator crashes on that), with
 * the claim-check buckets on the storage emulator and the stores in MariaDB.
 */
final class WorkParkingTest extends LaravelTestCase
{
    private const KEY = '31:sales_order:SO-K';

    /** @var list<resource> */
    private array $processes = [];

    /** @var list<string> */
    private array $databases = [];

    protected function tearDown(): void
    {
        foreach ($this->processes as $p) {
            if (is_resource($p)) {
                proc_terminate($p, SIGKILL);
                proc_close($p);
            }
        }
        foreach ($this->databases as $db) {
            Harness::dropDatabase($db);
        }
        parent::tearDown();
    }

    /** Starts the Pub/Sub fake built beside suitex-events with the pipelines' topology, and points them at it. */
    private function startFake(Pipeline ...$pipelines): void
    {
        $bin = dirname(Pipeline::required('SUITEX_EVENTS_BIN', 'the suitex-events binary')).'/pubsub-fake';
        $this->assertFileExists($bin, 'the Pub/Sub fake is built with the workspace (scripts/test)');
        $topology = array_merge(...array_map(fn (Pipeline $p) => $p->fakeTopology(), $pipelines));
        $err = tempnam(sys_get_temp_dir(), 'pubsub-fake');
        $proc = proc_open([$bin, '--port', '0', ...$topology], [1 => ['pipe', 'w'], 2 => ['file', $err, 'w']], $pipes);
        $this->processes[] = $proc;
        $endpoint = trim((string) fgets($pipes[1]));
        $this->assertMatchesRegularExpression('#^http://127\.0\.0\.1:\d+$#', $endpoint, 'the fake prints its endpoint: '.file_get_contents($err));
        unlink($err);
        foreach ($pipelines as $p) {
            $p->usePubSub(substr($endpoint, strlen('http://')));
        }
    }

    /** The application's environment on `$pipeline` and the event store `$database`. */
    private function envOf(Pipeline $pipeline, string $database): array
    {
        return $this->env(array_merge($pipeline->env, ['DB_EVENT_STORE_DATABASE' => $database]));
    }

    /** `suitex-events ARGS` as an operator runs it; returns its stdout, failing the test on an error. */
    private function suitex(array $args, array $env): string
    {
        [$code, $out, $err] = Harness::run([Pipeline::required('SUITEX_EVENTS_BIN', 'the suitex-events binary'), ...$args], $env);
        $this->assertSame(0, $code, 'suitex-events '.implode(' ', $args)." failed:\n$out\n$err");

        return $out;
    }

    /** Waits up to `$seconds` for `$condition`; fails the test with `$what` if it never holds. */
    private function eventually(float $seconds, string $what, callable $condition, callable $context): void
    {
        $until = microtime(true) + $seconds;
        while (! $condition()) {
            if (microtime(true) > $until) {
                $this->fail("$what (after {$seconds} s)\n".$context());
            }
            usleep(200_000);
        }
    }

    /**
     * The scene: key K gets k1, k2, k3, k4, with k2 a claim-check; key L gets l1, l2, l3
     * between them. The same events (ids, times, payloads) on every pipeline.
     */
    private static function scene(): array
    {
        $event = fn (string $aggregate, int $n, array $payload) => [
            'event_id' => sprintf('0190a7f2-4c1e-7b3a-9d2e-%012x', ($aggregate === 'SO-K' ? 0xa00 : 0xb00) + $n),
            'account_id' => 31, 'aggregate_type' => 'sales_order', 'aggregate_id' => $aggregate,
            'event_type' => 'sales_order.updated', 'occurred_at' => sprintf('2026-12-06T10:00:%02d.000000Z', $n),
            'payload' => $payload + ['n' => $n],
        ];
        $big = ['lines' => array_fill(0, 9000, ['item' => 1234567, 'memo' => 'netsuite'])];

        return [$event('SO-K', 1, []), $event('SO-L', 1, []), $event('SO-K', 2, $big), $event('SO-L', 2, []),
            $event('SO-K', 3, ['amount' => '10.00']), $event('SO-K', 4, ['tags' => []]), $event('SO-L', 3, [])];
    }

    private static function id(string $aggregate, int $n): string
    {
        return sprintf('0190a7f2-4c1e-7b3a-9d2e-%012x', ($aggregate === 'SO-K' ? 0xa00 : 0xb00) + $n);
    }

    /** The claim-check objects of the pipeline's bucket: name => bytes. */
    private static function objects(Pipeline $pipeline): array
    {
        $bucket = $pipeline->env['SUITEX_EVENTS_PAYLOAD_BUCKET'];
        [$status, $text] = Emulator::request('GET', Emulator::storage()."/storage/v1/b/$bucket/o");
        self::assertSame(200, $status, $text);
        $out = [];
        foreach (json_decode($text, true)['items'] ?? [] as $o) {
            $out[$o['name']] = Emulator::download($bucket, $o['name']);
        }

        return $out;
    }

    private static function deleteObject(Pipeline $pipeline, string $name): void
    {
        $bucket = $pipeline->env['SUITEX_EVENTS_PAYLOAD_BUCKET'];
        [$status, $text] = Emulator::request('DELETE', Emulator::storage()."/storage/v1/b/$bucket/o/".rawurlencode($name));
        self::assertContains($status, [200, 204], $text);
    }

    /** Puts the object back, as an operator restores it from a backup. */
    private static function restoreObject(Pipeline $pipeline, string $name, string $bytes): void
    {
        $bucket = $pipeline->env['SUITEX_EVENTS_PAYLOAD_BUCKET'];
        $ch = curl_init(Emulator::storage()."/upload/storage/v1/b/$bucket/o?uploadType=media&name=".rawurlencode($name));
        curl_setopt_array($ch, [CURLOPT_POST => true, CURLOPT_POSTFIELDS => $bytes, CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HTTPHEADER => ['Content-Type: application/json']]);
        $text = curl_exec($ch);
        self::assertSame(200, curl_getinfo($ch, CURLINFO_RESPONSE_CODE), (string) $text);
    }

    /** `php artisan events:work` until nothing more arrives; returns its output. */
    private function eventsWork(array $env): string
    {
        [$code, $out, $err] = Harness::php(['-d', 'extension='.Emulator::extensionPath(), 'artisan', 'events:work', '--stop-when-empty', '--wait=3000', '--max-attempts=5', '-v'], $env);
        $this->assertSame(0, $code, "events:work failed:\n$out\n$err");

        return $out.$err;
    }

    /** Starts `suitex-events worker`; returns [process, log file]. */
    private function rustWorker(array $env): array
    {
        $log = tempnam(sys_get_temp_dir(), 'suitex-worker');
        $proc = proc_open([Pipeline::required('SUITEX_EVENTS_BIN', 'the suitex-events binary'), 'worker'],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']], $pipes, null,
            array_merge(Harness::baseEnv(), $env));
        $this->processes[] = $proc;

        return [$proc, $log];
    }

    private static function stop(array $worker): string
    {
        [$proc, $log] = $worker;
        proc_terminate($proc, SIGTERM);
        proc_close($proc);
        $text = (string) file_get_contents($log);
        unlink($log);

        return $text;
    }

    /** What a store holds: its rows per aggregate (event ids, seq order, versions), parks, kept events. */
    private static function records(string $database): array
    {
        $pdo = Harness::pdo($database);
        $rows = $pdo->query('SELECT aggregate_id, event_id, aggregate_version FROM event_store ORDER BY seq')->fetchAll(\PDO::FETCH_ASSOC);
        $ledger = [];
        foreach ($rows as $r) {
            $ledger[$r['aggregate_id']][] = [$r['event_id'], (int) $r['aggregate_version']];
        }
        ksort($ledger);
        $parking = $pdo->query('SELECT action, ordering_key, park_id IS NOT NULL AS ends_a_park, event_id, reason, recorded_by FROM event_store_parking ORDER BY id')->fetchAll(\PDO::FETCH_ASSOC);
        $kept = $pdo->query('SELECT event_id, event FROM event_store_parked_events ORDER BY id')->fetchAll(\PDO::FETCH_ASSOC);

        return ['ledger' => $ledger, 'parking' => $parking, 'kept' => $kept];
    }

    /** `$records` with what differs by nature between two stores: the bucket's name, who recorded. */
    private static function comparable(array $records, Pipeline $pipeline): array
    {
        foreach ($records['parking'] as &$p) {
            $p['reason'] = str_replace($pipeline->env['SUITEX_EVENTS_PAYLOAD_BUCKET'], '<bucket>', $p['reason']);
            $p['recorded_by'] = preg_replace('/^.* as /', '<worker> as ', $p['recorded_by']);
        }

        return $records;
    }

    /** K's event n: a claim-check when `$big`. */
    private static function k(int $n, bool $big = false): array
    {
        return [
            'event_id' => self::id('SO-K', $n), 'account_id' => 31, 'aggregate_type' => 'sales_order', 'aggregate_id' => 'SO-K',
            'event_type' => 'sales_order.updated', 'occurred_at' => sprintf('2026-12-06T10:00:%02d.000000Z', $n),
            'payload' => ['n' => $n] + ($big ? ['lines' => array_fill(0, 9000, ['item' => 1234567, 'memo' => 'netsuite'])] : []),
        ];
    }

    /** Emits `$events` on `$pipeline`, losing the claim-check objects they make; returns them (name => bytes). */
    private static function emitLosingObjects(Pipeline $pipeline, array $events): array
    {
        $before = self::objects($pipeline);
        $pipeline->emit($events);
        $lost = array_diff_key(self::objects($pipeline), $before);
        foreach (array_keys($lost) as $name) {
            self::deleteObject($pipeline, $name);
        }

        return $lost;
    }

    /** The events kept aside behind each open park of K, by the payload's n. */
    private static function behindEachPark(string $database): array
    {
        $pdo = Harness::pdo($database);
        $parks = $pdo->query("SELECT id FROM event_store_parking WHERE action = 'parked' ORDER BY id")->fetchAll(\PDO::FETCH_COLUMN);

        return array_map(fn ($id) => array_map(
            fn ($text) => json_decode($text, true)['payload']['n'],
            $pdo->query("SELECT event FROM event_store_parked_events WHERE park_id = $id ORDER BY id")->fetchAll(\PDO::FETCH_COLUMN)
        ), $parks);
    }

    public function test_poison_of_a_parked_key_holds_back_the_events_after_it_until_it_is_dead_lettered(): void
    {
        // K is parked behind k2 (k3 kept aside). Then k4 (poison) and k5 arrive: while k4 has
        // attempts left, k5 must not be kept aside behind k2's park — released with it, k5
        // would be appended before k4. It waits, and is kept behind k4's own park.
        $pipeline = new Pipeline('parkagain');
        $this->startFake($pipeline);
        $this->migrate();
        $env = $this->envOf($pipeline, $this->eventStore);
        $lost = self::emitLosingObjects($pipeline, [self::k(1), self::k(2, true), self::k(3)]);
        $log = $this->eventsWork($env);
        $this->assertSame([[3]], self::behindEachPark($this->eventStore), "K is parked behind k2 with k3 aside:\n$log");

        $lost += self::emitLosingObjects($pipeline, [self::k(4, true), self::k(5)]);
        $this->assertCount(2, $lost);
        $log = $this->eventsWork($env);
        $this->assertSame([[3], [5]], self::behindEachPark($this->eventStore), "each event behind the dead letter before it:\n$log");

        foreach ($lost as $name => $bytes) {
            self::restoreObject($pipeline, $name, $bytes);
        }
        $this->suitex(['parked', 'release', self::KEY], $env);
        $log = $this->eventsWork($env);
        $ledger = self::records($this->eventStore)['ledger']['SO-K'] ?? [];
        $this->assertSame(array_map(fn ($n) => [self::id('SO-K', $n), $n], [1, 2, 3, 4, 5]), $ledger, "K is whole and in order:\n$log");
    }

    public function test_events_work_parks_a_key_exactly_as_the_rust_worker_does_and_either_worker_releases_the_others_park(): void
    {
        $php = new Pipeline('parkphp');
        $rust = new Pipeline('parkrust');
        $this->startFake($php, $rust);
        $this->migrate();
        $phpDb = $this->eventStore;
        $rustDb = $this->databases[] = Harness::createDatabase('es');
        // Each store migrated as its worker's deployment does it.
        $this->suitex(['migrate'], Harness::migrator($this->envOf($rust, $rustDb)));

        // The same scene on both; k2's claim-check object is lost before any worker runs.
        $lost = [];
        foreach ([$php, $rust] as $i => $pipeline) {
            $pipeline->emit(self::scene());
            $objects = self::objects($pipeline);
            $this->assertCount(1, $objects, 'k2 alone is large enough for a claim-check');
            $lost[$i] = [array_key_first($objects), reset($objects)];
            self::deleteObject($pipeline, $lost[$i][0]);
        }
        $phpEnv = $this->envOf($php, $phpDb);
        $rustEnv = $this->envOf($rust, $rustDb);

        // events:work on one, the Rust worker on the other, until k2 is dead-lettered after five
        // attempts and k3, k4 are kept aside.
        $parked = fn (string $db) => fn () => count(self::records($db)['kept']) === 2 && count(self::records($db)['ledger']['SO-L'] ?? []) === 3;
        $log = '';
        for ($run = 0; $run < 5 && ! $parked($phpDb)(); $run++) {
            $log .= $this->eventsWork($phpEnv);
        }
        $this->assertTrue($parked($phpDb)(), "events:work kept k3 and k4 aside and stored L:\n$log");
        $this->assertStringContainsString('key '.self::KEY.' parked', $log);
        $this->assertStringContainsString('2 kept aside', $log);
        $worker = $this->rustWorker($rustEnv);
        $this->eventually(60, 'the Rust worker kept k3 and k4 aside and stored L', $parked($rustDb), fn () => (string) file_get_contents($worker[1]));
        self::stop($worker);

        $k = fn (int $n) => self::id('SO-K', $n);
        $l = fn (int $n) => self::id('SO-L', $n);
        $phpRecords = self::records($phpDb);
        $this->assertSame(['SO-K' => [[$k(1), 1]], 'SO-L' => [[$l(1), 1], [$l(2), 2], [$l(3), 3]]], $phpRecords['ledger'],
            'K stops at k1 while its key is parked; L flows');
        $this->assertSame([$k(3), $k(4)], array_column($phpRecords['kept'], 'event_id'));
        $this->assertCount(1, $phpRecords['parking']);
        $this->assertSame(['parked', self::KEY, 0, $k(2)], array_slice(array_values($phpRecords['parking'][0]), 0, 4));
        $this->assertStringStartsWith('events:work as ', $phpRecords['parking'][0]['recorded_by']);
        $this->assertStringContainsString($lost[0][0], $phpRecords['parking'][0]['reason'], 'the reason names the missing object');
        $this->assertSame(self::comparable(self::records($rustDb), $rust), self::comparable($phpRecords, $php),
            'events:work leaves the records the Rust worker leaves: the same park, the same events kept aside byte for byte');
        $this->assertMatchesRegularExpression('/^\S+  event '.$k(2).' .* attempts 5 /', $this->suitex(['dlq', 'list'], $phpEnv), 'k2 alone is dead-lettered, after 5 attempts');
        $dead = json_decode($this->suitex(['dlq', 'show', $k(2)], $phpEnv), true);
        $sha = Harness::pdo($phpDb)->query('SELECT data_sha256 FROM event_store_parking')->fetchColumn();
        $this->assertSame(hash('sha256', $dead['data']), $sha, 'the park knows its dead letter by its body');

        // The cause is fixed; the operator releases the key. The Rust worker releases the park
        // events:work made, and events:work the Rust worker's.
        foreach ([[$php, 0, $phpEnv], [$rust, 1, $rustEnv]] as [$pipeline, $i, $env]) {
            self::restoreObject($pipeline, ...$lost[$i]);
            $this->suitex(['parked', 'release', self::KEY], $env);
        }
        $worker = $this->rustWorker($phpEnv);
        $released = fn (string $db) => fn () => count(self::records($db)['ledger']['SO-K'] ?? []) === 4;
        $this->eventually(60, 'the Rust worker released the park events:work made', $released($phpDb), fn () => (string) file_get_contents($worker[1]));
        self::stop($worker);
        $log = $this->eventsWork($rustEnv);
        $this->assertTrue($released($rustDb)(), "events:work released the Rust worker's park:\n$log");
        $this->assertStringContainsString('parked key '.self::KEY.' released', $log);

        foreach ([[$phpDb, 'worker as '], [$rustDb, 'events:work as ']] as [$db, $releasedBy]) {
            $records = self::records($db);
            $this->assertSame([[$k(1), 1], [$k(2), 2], [$k(3), 3], [$k(4), 4]], $records['ledger']['SO-K'],
                'K is stored k1, k2, k3, k4: in seq order, versions 1 to 4');
            $this->assertSame(['redriven', self::KEY, 1], array_slice(array_values($records['parking'][1]), 0, 3));
            $this->assertStringStartsWith($releasedBy, $records['parking'][1]['recorded_by']);
            $this->assertSame([], json_decode($this->suitex(['parked', 'list', '--json'], $this->envOf($php, $db)), true), 'no key is parked');
        }
    }
}
