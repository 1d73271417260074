<?php

namespace Tests\Feature;

use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;
use Tests\Support\PrivateMariaDb;

/**
 * Scenario 1: adding the event store costs the running application nothing. The dedicated
 * instance is modelled by a second MariaDB server of this test's own. While a load of primary
 * queries runs without pause, the event store is absent, then started, migrated and written to,
 * then stopped again — and the primary load sees zero failed queries throughout.
 */
final class ZeroDowntimeTest extends LaravelTestCase
{
    public function test_the_primary_never_fails_while_the_event_store_comes_and_goes(): void
    {
        Harness::pdo($this->primary)->exec('CREATE TABLE heartbeats (id BIGINT AUTO_INCREMENT PRIMARY KEY, phase VARCHAR(32) NOT NULL)');
        $es = new PrivateMariaDb();
        $env = $this->env([
            'DB_EVENT_STORE_HOST' => '127.0.0.1',
            'DB_EVENT_STORE_PORT' => (string) $es->port,
            'DB_EVENT_STORE_DATABASE' => 'event_store',
            'DB_EVENT_STORE_USERNAME' => 'root',
            'DB_EVENT_STORE_PASSWORD' => '',
            'DB_EVENT_STORE_CONNECT_TIMEOUT' => '2',
        ]);
        $dir = sys_get_temp_dir().'/suitex-load-'.bin2hex(random_bytes(4));
        mkdir($dir);
        $phase = fn (string $p) => file_put_contents("$dir/phase", $p);
        $phase('absent');

        $load = proc_open(
            [PHP_BINARY, dirname(__DIR__).'/Support/primary_load.php', Harness::appDir(), "$dir/phase", "$dir/ready"],
            [1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes,
            Harness::appDir(),
            array_merge(Harness::baseEnv(), $env)
        );
        for ($i = 0; $i < 200 && ! file_exists("$dir/ready"); $i++) {
            usleep(50_000);
        }
        $this->assertFileExists("$dir/ready", 'the application boots while the event store is absent');

        // Absent: the application boots and serves the primary; the event store is unreachable.
        $this->assertBootsAndServesPrimaryWhileTheEventStoreIsDown($env);
        usleep(1_500_000);

        $phase('starting');
        $es->start();
        (new \PDO("mysql:host=127.0.0.1;port={$es->port}", 'root', ''))->exec('CREATE DATABASE event_store CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci');
        [$code, $out, $err] = Harness::artisan(['migrate', '--force'], Harness::migrator($env));
        $this->assertSame(0, $code, $out.$err);

        $phase('writing');
        [$code, $out, $err] = Harness::php([dirname(__DIR__).'/Support/write_events.php', Harness::appDir(), '200'], $env);
        $this->assertSame(0, $code, $out.$err);
        $this->assertSame('200', $out, 'EventStore::create() wrote the dedicated instance');

        $phase('stopped');
        $es->stop();
        $this->assertBootsAndServesPrimaryWhileTheEventStoreIsDown($env);
        usleep(1_500_000);

        $phase('stop');
        $stats = json_decode(stream_get_contents($pipes[1]), true);
        $errors = stream_get_contents($pipes[2]);
        proc_close($load);
        $this->assertIsArray($stats, "the load reported nothing: $errors");
        foreach (['absent', 'starting', 'writing', 'stopped'] as $p) {
            $this->assertArrayHasKey($p, $stats, "no primary queries ran while the event store was $p");
            $s = $stats[$p];
            fwrite(STDERR, sprintf("\n  primary load, event store %-8s: %5d queries, %d failed, p50 %.2f ms, p99 %.2f ms", $p, $s['queries'], count($s['failures']), $s['p50_ms'], $s['p99_ms']));
            $this->assertGreaterThan(0, $s['queries']);
            $this->assertSame([], $s['failures'], "primary queries failed while the event store was $p");
        }
        fwrite(STDERR, "\n");
        exec('rm -rf '.escapeshellarg($dir));
    }

    private function assertBootsAndServesPrimaryWhileTheEventStoreIsDown(array $env): void
    {
        [$code, $out, $err] = Harness::php([dirname(__DIR__).'/Support/boot_and_query.php', Harness::appDir()], $env);
        $this->assertSame(0, $code, $out.$err);
        $r = json_decode($out, true);
        $this->assertTrue($r['booted']);
        $this->assertSame(2, $r['primary_users']);
        $this->assertSame('Illuminate\Database\QueryException', $r['event_store_error'] ?? null, 'the event store is really down');
    }
}
