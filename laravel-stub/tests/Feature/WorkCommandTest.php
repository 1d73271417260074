<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Models\EventStore;
use Tests\Support\Emulator;
use Tests\Support\Harness;
use Tests\Support\OtlpReceiver;
use Tests\Support\LaravelTestCase;
use Tests\Support\Pipeline;
use Tests\Support\PrivateMariaDb;

/**
 * `php artisan events:work`, the PHP worker, on the same services as the Rust worker's tests:
 * the Pub/Sub and Cloud Storage emulators, MariaDB (the test server, or a private one that the
 * test stops and starts), the extension built by scripts/test.
 */
final class WorkCommandTest extends LaravelTestCase
{
    /** @var list<resource> */
    private array $workers = [];

    /** @var list<string> */
    private array $logs = [];

    /** @var list<OtlpReceiver> */
    private array $receivers = [];

    protected function tearDown(): void
    {
        foreach ($this->workers as $w) {
            if (is_resource($w)) {
                proc_terminate($w, SIGKILL);
                proc_close($w);
            }
        }
        foreach ($this->logs as $log) {
            @unlink($log);
        }
        foreach ($this->receivers as $r) {
            $r->stop();
        }
        parent::tearDown();
    }

    /** Events over `$keys` aggregates of account 42, each with a sequence number. */
    private static function events(int $n, int $keys, string $prefix = 'C'): array
    {
        $out = [];
        for ($i = 0; $i < $n; $i++) {
            $out[] = ['account_id' => 42, 'aggregate_type' => 'customer', 'aggregate_id' => $prefix.'-'.($i % $keys),
                'event_type' => 'customer.updated', 'payload' => ['seq' => $i, 'name' => 'Zoë']];
        }

        return $out;
    }

    /** `php artisan events:work` with the extension loaded; returns [exit code, stdout, stderr]. */
    private function work(array $env, array $args = ['--stop-when-empty', '--wait=3000']): array
    {
        return Harness::php(['-d', 'extension='.Emulator::extensionPath(), 'artisan', 'events:work', ...$args], $env);
    }

    /** Starts `php artisan events:work` in the background; returns its process. */
    private function startWorker(array $env): mixed
    {
        $log = tempnam(sys_get_temp_dir(), 'events-work');
        $this->logs[] = $log;
        $proc = proc_open([PHP_BINARY, '-d', 'extension='.Emulator::extensionPath(), 'artisan', 'events:work', '-v'],
            [1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']], $pipes, Harness::appDir(), array_merge(Harness::baseEnv(), $env));

        return $this->workers[] = $proc;
    }

    private function workerLogs(): string
    {
        return implode("\n", array_map(fn ($f) => (string) @file_get_contents($f), $this->logs));
    }

    /** Waits up to `$seconds` for `$condition`; fails the test with `$what` if it never holds. */
    private function eventually(float $seconds, string $what, callable $condition): void
    {
        $until = microtime(true) + $seconds;
        while (! $condition()) {
            if (microtime(true) > $until) {
                $this->fail("$what (after {$seconds} s)\n".$this->workerLogs());
            }
            usleep(200_000);
        }
    }

    private static function rowCount(string $database, ?int $port = null): int
    {
        try {
            return (int) Harness::pdo($database, $port)->query('SELECT COUNT(*) FROM event_store')->fetchColumn();
        } catch (\PDOException) {
            return -1;
        }
    }

    private static function storedIds(string $database, ?int $port = null): array
    {
        return Harness::pdo($database, $port)->query('SELECT event_id FROM event_store ORDER BY id')->fetchAll(\PDO::FETCH_COLUMN);
    }

    public function test_events_are_stored_with_their_exact_json_acked_and_reach_merged_from_the_ledger(): void
    {
        $this->migrate();
        $pipeline = new Pipeline('work');
        $pipeline->provision();
        $events = self::events(20, 4);
        $events[] = ['account_id' => 42, 'aggregate_type' => 'customer', 'aggregate_id' => 'C-big', 'event_type' => 'customer.synced',
            'payload' => ['records' => array_fill(0, 9000, ['id' => 1234567, 'memo' => 'netsuite'])]];
        $ids = $pipeline->emit($events);
        $env = $this->env($pipeline->env);

        [$code, $out, $err] = $this->work($env);
        $this->assertSame(0, $code, $out.$err);
        $this->assertStringContainsString('21 stored, 0 duplicates, 0 poison', $out, $err);

        $this->boot($pipeline->env);
        $rows = EventStore::query()->orderBy('id')->get()->keyBy('event_id');
        $this->assertEqualsCanonicalizing($ids, $rows->keys()->all(), 'every event stored once');
        $this->assertCount(9000, $rows[$ids[20]]->payload['records'], 'the claim-check was resolved: the full document is stored');

        $merged = $pipeline->merged(21, feederEnv: $env);
        $this->assertEqualsCanonicalizing($ids, array_keys($merged), 'every stored event reached events.merged');
        foreach ($merged as $eventId => [$m]) {
            $this->assertSame($rows[$eventId]->id, $m['store_id'], "events.merged carries the store id of $eventId");
            $this->assertSame([$rows[$eventId]->seq, $rows[$eventId]->aggregate_version], [$m['seq'], $m['aggregate_version']]);
            $this->assertFalse($m['replayed']);
        }
        $this->assertArrayHasKey('payload_ref', $merged[$ids[20]][0], 'the large payload travels as its claim-check');

        // A redelivery of a stored event (the same event_id and content): no second row, acked,
        // nothing new on events.merged. And an event whose JSON a PHP array would not keep (an
        // empty object, a float's fraction): stored as it came.
        $again = $merged[$ids[3]][0];
        unset($again['store_id'], $again['seq'], $again['aggregate_version'], $again['replayed']);
        $pipeline->publishRaw(json_encode($again));
        $exact = array_merge($again, ['event_id' => '0190a7f2-4c1e-7b3a-9d2e-00000000cafe', 'aggregate_id' => 'C-json',
            'payload' => '@payload', 'metadata' => '@metadata']);
        $payload = '{"address":{},"balance":10.0}';
        $pipeline->publishRaw(str_replace(['"@payload"', '"@metadata"'], [$payload, '{"actor":"user:7","tags":[]}'], json_encode($exact)));
        [$code, $out, $err] = $this->work($env);
        $this->assertSame(0, $code, $out.$err);
        $this->assertStringContainsString('1 stored, 1 duplicates, 0 poison', $out, $err);
        $this->assertSame(22, self::rowCount($this->eventStore));
        $merged = $pipeline->merged(2, 3.0, $env);
        $this->assertSame([$exact['event_id']], array_keys($merged), 'the new row reaches events.merged; the duplicate added no row, so nothing');
        $row = EventStore::query()->where('event_id', $exact['event_id'])->sole();
        $this->assertSame($payload, $row->getRawOriginal('payload'), 'the payload is stored byte for byte');
        $this->assertSame('{"actor":"user:7","tags":[]}', $row->getRawOriginal('metadata'));
        $this->assertSame(['actor' => 'user:7', 'tags' => []], $row->metadata);
        $this->assertSame([], $pipeline->deadLetters(1, 1.0));
    }

    public function test_events_work_continues_the_producers_trace_in_its_receive_insert_and_ack_spans(): void
    {
        $trace = '4bf92f3577b34da6a3ce929d0e0e4736';
        $producer = '00f067aa0ba902b7';
        $this->migrate();
        $pipeline = new Pipeline('worktrace');
        $pipeline->provision();
        [$id] = $pipeline->emit([['account_id' => 42, 'aggregate_type' => 'customer', 'aggregate_id' => 'C-traced',
            'event_type' => 'customer.updated', 'payload' => ['n' => 1], 'metadata' => ['traceparent' => "00-$trace-$producer-01"]]]);
        // The receiving end of a real OTLP exporter (tests/otlp-receiver.py).
        $receiver = OtlpReceiver::start();
        $this->receivers[] = $receiver;

        $env = $this->env($pipeline->env) + $receiver->env();
        [$code, $out, $err] = $this->work($env);
        $this->assertSame(0, $code, $out.$err);
        $this->assertStringContainsString('1 stored', $out, $err);
        $this->boot($pipeline->env);
        $row = EventStore::query()->where('event_id', $id)->sole();

        $subscription = $pipeline->env['SUITEX_EVENTS_RAW_SUBSCRIPTION'];
        $receive = $receiver->span("$subscription receive", $trace);
        $this->assertSame('suitex-php-cli', $receive['service']);
        $this->assertSame($producer, $receive['parent_span_id'], 'a child of the context the producer sent');
        $this->assertSame('consumer', $receive['kind']);
        $this->assertSame($id, $receive['attributes']['event_id']);
        $ack = $receiver->span("$subscription ack", $trace);
        $this->assertSame($receive['span_id'], $ack['parent_span_id']);
        $this->assertSame($row->id, $ack['attributes']['ledger.store_id'], 'the ack names the row it settles');
        // EventStore::create()'s INSERT: a database span linked to the delivery's receive span.
        $insert = $receiver->linkedSpan('INSERT event_store', $trace, $receive['span_id']);
        $this->assertSame('suitex-php-cli', $insert['service']);
        $this->assertSame('mysql', $insert['attributes']['db.system']);
        $this->assertSame('event_store', $insert['attributes']['db.collection.name']);
        $this->assertArrayNotHasKey('error.type', $insert['attributes'], 'the INSERT succeeded');
    }

    public function test_poison_is_dead_lettered_after_exactly_five_attempts_and_healthy_events_flow(): void
    {
        // Scenario 3: a message that is not an event, and an event_id stored already as another
        // event; both dead-letter after their fifth attempt, nothing else does.
        $this->migrate();
        $pipeline = new Pipeline('workpoison');
        $pipeline->provision(immediateRedelivery: true);
        $ids = $pipeline->emit(self::events(10, 2));
        $pipeline->publishRaw('{"not": "an envelope"}', ['origin' => 'test']);
        $env = $this->env($pipeline->env);
        [$code, $out, $err] = $this->work($env);
        $this->assertSame(0, $code, $out.$err);
        $this->assertSame(10, self::rowCount($this->eventStore));

        $merged = $pipeline->merged(10, feederEnv: $env);
        $conflict = $merged[$ids[0]][0];
        unset($conflict['store_id'], $conflict['seq'], $conflict['aggregate_version'], $conflict['replayed']);
        $conflict['payload'] = ['seq' => 'another'];
        $pipeline->publishRaw(json_encode($conflict));
        [$code, $out2, $err2] = $this->work($env);
        $this->assertSame(0, $code, $out2.$err2);

        $dead = $pipeline->deadLetters(2, 60.0);
        $this->assertCount(2, $dead, "both poison messages reached events.dlq\n$out$err\n$out2$err2");
        $bodies = array_column($dead, 'data');
        $this->assertContains('{"not": "an envelope"}', $bodies);
        $this->assertContains(json_encode($conflict), $bodies);
        foreach ($dead as $d) {
            $this->assertSame('5', $d['attributes']['CloudPubSubDeadLetterSourceDeliveryCount'] ?? null, json_encode($d['attributes']));
        }
        $this->assertMatchesRegularExpression('/10 stored, 0 duplicates, 5 poison/', $out, $err);
        $this->assertMatchesRegularExpression('/0 stored, 0 duplicates, 5 poison/', $out2, $err2);
        $this->assertStringContainsString("event_id {$ids[0]} is already stored", $err2);
        $this->assertStringContainsString('dead-lettered now', $err2);
        $this->assertSame(10, self::rowCount($this->eventStore), 'the conflicting event was never stored');
    }

    public function test_a_payload_the_ledger_would_alter_is_poison_here_too_never_stored_altered(): void
    {
        // Another producer publishes numbers the ledger cannot hold exactly and a duplicate key
        // (docs/architecture.md §2.1): events:work refuses them as the Rust worker does.
        $this->migrate();
        $pipeline = new Pipeline('workexact');
        $pipeline->provision(immediateRedelivery: true);
        $wire = fn (string $id, string $payload) => sprintf(
            '{"event_id":"%s","account_id":42,"aggregate_type":"customer","aggregate_id":"X-%s","event_type":"customer.updated",'
            .'"occurred_at":"2026-12-06T10:00:00.000000Z","payload":%s,"schema_version":1}',
            $id, substr($id, -4), $payload
        );
        $big = '0190a7f2-4c1e-7b3a-9d2e-0000000000b1';
        $dup = '0190a7f2-4c1e-7b3a-9d2e-0000000000d2';
        $pipeline->publishRaw($wire($big, '{"big":1180591620717411303424}'), ['event_id' => $big]);
        $pipeline->publishRaw($wire($dup, '{"a":1,"a":2}'), ['event_id' => $dup]);
        $env = $this->env($pipeline->env);
        [$code, $out, $err] = $this->work($env);
        $this->assertSame(0, $code, $out.$err);

        $dead = $pipeline->deadLetters(2, 60.0);
        $this->assertCount(2, $dead, "both reached events.dlq\n$out$err");
        $this->assertSame(0, self::rowCount($this->eventStore), 'neither was stored, altered or not');
        $this->assertStringContainsString('payload.big is the integer 1180591620717411303424, outside the range the ledger stores exactly', $err);
        $this->assertStringContainsString('payload.a appears twice in one object', $err);
    }

    public function test_a_database_outage_under_load_dead_letters_nothing_and_loses_nothing(): void
    {
        $db = new PrivateMariaDb();
        $db->start();
        $store = Harness::createDatabase('es', $db->port);
        $pipeline = new Pipeline('workoutage');
        $pipeline->provision();
        $env = $this->env(array_merge($pipeline->env, ['DB_EVENT_STORE_PORT' => (string) $db->port, 'DB_EVENT_STORE_DATABASE' => $store]));
        [$code, $out, $err] = Harness::artisan(['migrate', '--force'], Harness::migrator($env));
        $this->assertSame(0, $code, $out.$err);

        $ids = $pipeline->emit(self::events(600, 20));
        $this->startWorker($env);
        $this->eventually(60, 'the worker stores events', fn () => self::rowCount($store, $db->port) >= 50);
        $db->stop();
        // Down for longer than a lease: the events in hand keep theirs (no attempt is spent).
        $ids = array_merge($ids, $pipeline->emit(self::events(100, 20, 'D')));
        sleep(25);
        $db->start();
        $this->eventually(120, 'every event is stored after the outage', fn () => self::rowCount($store, $db->port) === 700);

        $this->assertEqualsCanonicalizing($ids, self::storedIds($store, $db->port), 'each event stored exactly once');
        $this->assertSame([], $pipeline->deadLetters(1, 3.0), 'nothing was dead-lettered');
        $this->assertMatchesRegularExpression('/storing event .* failed \(\w+, \d+ in a row\), retrying/', $this->workerLogs(), 'the outage was waited out');
        $this->assertStringNotContainsString('poison', $this->workerLogs());
        Harness::dropDatabase($store, $db->port);
    }

    /** The sessions a test ends as a DBA are listed as the Rust tests list them, proven there. */
    public function test_the_session_listing_is_the_rust_tests(): void
    {
        $rust = file_get_contents(dirname(__DIR__, 3).'/tests/support/src/lib.rs');
        $this->assertSame(1, preg_match('/SESSIONS_OF_ACCOUNT: &str = "((?:[^"\\\\]|\\\\.)*)";/s', $rust, $m), 'the Rust query');
        // A backslash at a line's end continues a Rust string past the line break and indent.
        $this->assertSame(Harness::SESSIONS_OF_ACCOUNT, preg_replace('/\\\\\n\s*/', '', $m[1]));
    }

    /**
     * A private MariaDB with the event store migrated and a worker account holding
     * database-level rights (the common way to grant), and a provisioned pipeline:
     * [server, database, root PDO, pipeline, the worker's environment without its account].
     */
    private function sessionFaultBed(string $prefix): array
    {
        $db = new PrivateMariaDb();
        $db->start();
        $store = Harness::createDatabase('es', $db->port);
        $root = Harness::pdo(null, $db->port);
        $root->exec("CREATE USER 'suitex_worker'@'%' IDENTIFIED BY 'w0rker-secret'");
        $root->exec("GRANT SELECT, INSERT ON `{$store}`.* TO 'suitex_worker'@'%'");
        $pipeline = new Pipeline($prefix);
        $pipeline->provision();
        $base = array_merge($pipeline->env, ['DB_EVENT_STORE_PORT' => (string) $db->port, 'DB_EVENT_STORE_DATABASE' => $store]);
        [$code, $out, $err] = Harness::artisan(['migrate', '--force'], Harness::migrator($this->env($base)));
        $this->assertSame(0, $code, $out.$err);

        return [$db, $store, $root, $pipeline, $base];
    }

    /**
     * The faults that are about the session, one after the other under load, with a worker
     * account that holds database-level rights (the common way to grant): a database-level
     * REVOKE / GRANT of INSERT (reaches an open session only at its next USE), every session
     * killed twice, a read-only server (a failover's old primary). The same worker process
     * stores every event once, dead-letters nothing, and says which failure it waits out.
     */
    public function test_session_faults_under_load_need_no_restart(): void
    {
        [$db, $store, $root, $pipeline, $base] = $this->sessionFaultBed('workrecover');
        $worker = $this->startWorker($this->env(array_merge($base, [
            'DB_EVENT_STORE_USERNAME' => 'suitex_worker', 'DB_EVENT_STORE_PASSWORD' => 'w0rker-secret',
        ])));
        $killSessions = fn (): int => Harness::killSessionsOf($root, 'suitex_worker');

        $ids = $pipeline->emit(self::events(200, 20));
        $this->eventually(60, 'the worker stores events', fn () => self::rowCount($store, $db->port) >= 20);

        // Open sessions keep the database-level rights they logged in with: the DBA ends them so
        // the REVOKE bites. Sessions opened meanwhile would never see the GRANT that follows.
        $root->exec("REVOKE INSERT ON `{$store}`.* FROM 'suitex_worker'@'%'");
        $killSessions();
        $ids = array_merge($ids, $pipeline->emit(self::events(100, 20, 'R')));
        $this->eventually(30, 'the worker reports the missing right', fn () => str_contains($this->workerLogs(), 'failed (access, '));
        sleep(3);
        $root->exec("GRANT INSERT ON `{$store}`.* TO 'suitex_worker'@'%'");
        $this->eventually(90, 'every event is stored after the GRANT', fn () => self::rowCount($store, $db->port) === 300);

        $this->assertGreaterThan(0, $killSessions(), 'the worker had a session');
        $ids = array_merge($ids, $pipeline->emit(self::events(100, 20, 'K')));
        sleep(3);
        $killSessions();
        $this->eventually(90, 'every event is stored after the kills', fn () => self::rowCount($store, $db->port) === 400);

        $root->exec('SET GLOBAL read_only = ON');
        $ids = array_merge($ids, $pipeline->emit(self::events(100, 20, 'O')));
        $this->eventually(30, 'the worker reports the read-only server', fn () => str_contains($this->workerLogs(), 'failed (read_only, '));
        sleep(3);
        $root->exec('SET GLOBAL read_only = OFF');
        $this->eventually(90, 'every event is stored once the server is writable', fn () => self::rowCount($store, $db->port) === 500);

        $this->assertTrue(proc_get_status($worker)['running'], 'the same worker process recovered: '.$this->workerLogs());
        $this->assertEqualsCanonicalizing($ids, self::storedIds($store, $db->port), 'each event stored exactly once');
        $this->assertSame([], $pipeline->deadLetters(1, 3.0), 'nothing was dead-lettered');
        $this->assertStringNotContainsString('poison', $this->workerLogs());
        Harness::dropDatabase($store, $db->port);
    }

    /**
     * A password rotated in the secret the worker reads (DB_EVENT_STORE_PASSWORD_FILE) — the old
     * one refused from then on — and a server out of connections (max_connections lowered to
     * MariaDB's floor and taken by other sessions), each under load: the same events:work
     * process logs in again with the new password, stores every event once, dead-letters nothing.
     */
    public function test_a_rotated_password_and_a_server_out_of_connections_need_no_restart(): void
    {
        [$db, $store, $root, $pipeline, $base] = $this->sessionFaultBed('workrotate');
        $secret = tempnam(sys_get_temp_dir(), 'event-store-password');
        $this->logs[] = $secret;
        file_put_contents($secret, "w0rker-secret\n");
        $worker = $this->startWorker($this->env(array_merge($base, [
            'DB_EVENT_STORE_USERNAME' => 'suitex_worker', 'DB_EVENT_STORE_PASSWORD' => '', 'DB_EVENT_STORE_PASSWORD_FILE' => $secret,
        ])));
        $killSessions = fn (): int => Harness::killSessionsOf($root, 'suitex_worker');

        $ids = $pipeline->emit(self::events(100, 10));
        $this->eventually(60, 'the worker stores events', fn () => self::rowCount($store, $db->port) >= 20);

        $root->exec("ALTER USER 'suitex_worker'@'%' IDENTIFIED BY 'r0tated-secret'");
        $killSessions();
        $ids = array_merge($ids, $pipeline->emit(self::events(50, 10, 'P')));
        $this->eventually(30, 'the worker reports the refused password', fn () => str_contains($this->workerLogs(), 'failed (authentication, '));
        file_put_contents($secret, "r0tated-secret\n");
        $this->eventually(90, 'every event is stored with the new password', fn () => self::rowCount($store, $db->port) === 150);

        $root->exec('SET GLOBAL max_connections = 10');
        $killSessions();
        $others = [];
        try {
            for ($i = 0; $i < 20; $i++) {
                $others[] = Harness::pdo(null, $db->port);
            }
        } catch (\PDOException $e) {
            $this->assertStringContainsString('1040', $e->getMessage());
        }
        $this->assertGreaterThanOrEqual(9, count($others), 'other sessions took the server\'s connections');
        $ids = array_merge($ids, $pipeline->emit(self::events(50, 10, 'M')));
        $this->eventually(30, 'the worker reports the connection limit', fn () => str_contains($this->workerLogs(), 'failed (connection_limit, '));
        $others = [];
        $root->exec('SET GLOBAL max_connections = 151');
        $this->eventually(90, 'every event is stored once connections are free', fn () => self::rowCount($store, $db->port) === 200);

        $this->assertTrue(proc_get_status($worker)['running'], 'the same worker process recovered: '.$this->workerLogs());
        $this->assertEqualsCanonicalizing($ids, self::storedIds($store, $db->port), 'each event stored exactly once');
        $this->assertSame([], $pipeline->deadLetters(1, 3.0), 'nothing was dead-lettered');
        $this->assertStringNotContainsString('poison', $this->workerLogs());
        Harness::dropDatabase($store, $db->port);
    }

    public function test_sigterm_and_kill_9_lose_and_duplicate_nothing(): void
    {
        $this->migrate();
        $pipeline = new Pipeline('workkill');
        // What the killed worker held comes back when its leases run out: after 10 s here
        // rather than production's 60.
        $pipeline->provision(ackDeadline: 10);
        $env = $this->env($pipeline->env);
        $ids = $pipeline->emit(self::events(900, 30));

        // SIGTERM: the event in hand is finished, the rest released; exit 0.
        $first = $this->startWorker($env);
        $this->eventually(60, 'the first worker stores events', fn () => self::rowCount($this->eventStore) >= 100);
        proc_terminate($first, SIGTERM);
        $this->eventually(15, 'the worker exits on SIGTERM', fn () => ! proc_get_status($first)['running']);
        $this->assertMatchesRegularExpression('/events:work stopped: \d+ stored/', $this->workerLogs());

        // kill -9 mid-drain: what it held comes back when its leases run out.
        $stored = self::rowCount($this->eventStore);
        $second = $this->startWorker($env);
        $this->eventually(60, 'the second worker stores events', fn () => self::rowCount($this->eventStore) >= $stored + 100);
        proc_terminate($second, SIGKILL);
        proc_close($second);

        $this->startWorker($env);
        $this->eventually(120, 'every event is stored', fn () => self::rowCount($this->eventStore) === 900);
        $this->assertEqualsCanonicalizing($ids, self::storedIds($this->eventStore), '0 lost, 0 duplicated');
        $merged = $pipeline->merged(900, feederEnv: $env);
        $this->assertEqualsCanonicalizing($ids, array_keys($merged), 'every event reached events.merged');
        $this->assertSame([], $pipeline->deadLetters(1, 2.0), 'nothing was dead-lettered');
    }

    public function test_three_writers_at_once_and_a_tail_that_sees_every_row_once_in_ledger_order(): void
    {
        // events:work, the Rust worker and an operator's INSERTs in transactions held open for
        // random times, all at once; `suitex-events tail` follows the ledger meanwhile.
        $this->migrate();
        $pipeline = new Pipeline('ledger');
        $pipeline->provision();
        $env = $this->env($pipeline->env);
        $bin = Pipeline::required('SUITEX_EVENTS_BIN', 'the suitex-events binary');
        $tailed = tempnam(sys_get_temp_dir(), 'tail');
        $this->logs[] = $tailed;
        $tail = proc_open([$bin, 'tail'], [1 => ['file', $tailed, 'w'], 2 => ['file', '/dev/null', 'w']], $pipes, null, array_merge(Harness::baseEnv(), $env));
        $this->workers[] = $tail;
        $ids = $pipeline->emit(self::events(600, 12, 'L'));
        $this->startWorker($env);
        $rustLog = tempnam(sys_get_temp_dir(), 'rust-worker');
        $this->logs[] = $rustLog;
        $this->workers[] = proc_open([$bin, 'worker'], [1 => ['file', $rustLog, 'a'], 2 => ['file', $rustLog, 'a']], $pipes, null, array_merge(Harness::baseEnv(), $env));

        $pdo = Harness::pdo($this->eventStore);
        $insert = $pdo->prepare('INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, occurred_at) '
            ."VALUES (42, ?, 'customer', ?, 'customer.corrected', '{\"by\": \"hand\"}', UTC_TIMESTAMP(6))");
        for ($i = 0; $i < 100; $i++) {
            $h = bin2hex(random_bytes(16));
            $id = sprintf('%s-%s-4%s-a%s-%s', substr($h, 0, 8), substr($h, 8, 4), substr($h, 13, 3), substr($h, 17, 3), substr($h, 20, 12));
            $ids[] = $id;
            $pdo->beginTransaction();
            $insert->execute([$id, 'L-'.($i % 12)]);
            usleep(random_int(0, 20_000));
            $pdo->commit();
        }
        $this->eventually(180, 'all 700 rows are stored', fn () => self::rowCount($this->eventStore) === 700);
        $this->eventually(30, 'tail printed all 700 rows', fn () => count(file($tailed)) >= 700);
        proc_terminate($tail, SIGTERM);

        $lines = array_map(fn ($l) => json_decode($l, true, 512, JSON_THROW_ON_ERROR), file($tailed));
        $this->assertSame(range(1, 700), array_column($lines, 'seq'), 'tail saw seq 1…700 once each, in order, while the rows were written');
        $this->assertEqualsCanonicalizing($ids, array_column($lines, 'event_id'), 'every event, none twice');
        $versions = [];
        foreach ($lines as $l) {
            $versions[$l['aggregate_id']][] = $l['aggregate_version'];
        }
        foreach ($versions as $aggregate => $v) {
            $this->assertSame(range(1, count($v)), $v, "$aggregate: versions 1…k in seq order");
        }

        // The Laravel scopes on the same data.
        $this->boot(['DB_EVENT_STORE_ROLE' => 'reader']);
        $this->assertSame(range(1, 700), EventStore::afterSeq(0)->pluck('seq')->all());
        $this->assertSame(array_column($lines, 'event_id'), EventStore::afterSeq(0)->pluck('event_id')->all());
        $this->assertSame(range(1, count($versions['L-3'])), EventStore::forAggregate(42, 'customer', 'L-3')->pluck('aggregate_version')->all());
        $paged = [];
        EventStore::query()->lazyBySeq(64)->each(function (EventStore $e) use (&$paged) {
            $paged[] = $e->seq;
        });
        $this->assertSame(range(1, 700), $paged);

        // Every writer's rows are chained: `suitex-events verify` recomputes all 700 hashes.
        $verify = proc_open([$bin, 'verify', '--json'], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, array_merge(Harness::baseEnv(), $env));
        $report = json_decode(stream_get_contents($pipes[1]), true);
        $err = stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($verify), "verify: $err");
        $this->assertTrue($report['intact'] ?? false, json_encode($report));
        $this->assertSame(700, $report['rows']);
    }

    public function test_the_web_tier_role_cannot_run_the_worker(): void
    {
        $pipeline = new Pipeline('workrole');
        [$code, $out, $err] = $this->work($this->env(array_merge($pipeline->env, ['DB_EVENT_STORE_ROLE' => 'reader'])));
        $this->assertSame(1, $code, $out.$err);
        $this->assertStringContainsString('DB_EVENT_STORE_ROLE=writer', $out.$err);
    }
}
