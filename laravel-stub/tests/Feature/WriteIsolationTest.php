<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Exceptions\EventStoreWriteForbiddenException;
use Illuminate\Database\QueryException;
use Illuminate\Support\Facades\DB;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;

/**
 * Write isolation by the connection's role (DB_EVENT_STORE_ROLE), not by the SAPI: with the
 * reader role — the default, the web tier's — every write path Laravel offers is refused
 * before any SQL is sent, in the CLI and under php-fpm; the writer (the worker) appends and
 * does nothing else; and the reader's database account refuses writes as well.
 */
final class WriteIsolationTest extends LaravelTestCase
{
    /** The event store's tables after migrating, with no event written (the order counter's one row). */
    private const NOTHING_WRITTEN = ['event_store' => 0, 'event_store_aggregates' => 0, 'event_store_merged_position' => 0, 'event_store_parked_events' => 0, 'event_store_parking' => 0, 'event_store_sequence' => 1];

    private $fpm = null;

    private ?string $fpmDir = null;

    protected function tearDown(): void
    {
        if (is_resource($this->fpm)) {
            proc_terminate($this->fpm, SIGTERM);
            proc_close($this->fpm);
        }
        parent::tearDown();
    }

    /** The web tier's settings: no role set, so the default (reader). */
    private function webEnv(array $extra = []): array
    {
        return array_merge(array_diff_key($this->env(), ['DB_EVENT_STORE_ROLE' => true]), $extra);
    }

    private static function paths(): array
    {
        return require dirname(__DIR__).'/Support/write_paths.php';
    }

    public function test_every_write_path_is_refused_before_any_sql_with_the_reader_role_in_the_cli(): void
    {
        $this->migrate();
        Harness::pdo($this->eventStore)->exec(
            "INSERT INTO event_store (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, occurred_at) "
            ."VALUES (42, '0190a7f2-4c1e-7b3a-9d2e-000000000001', 'customer', 'C-1', 'customer.updated', '{\"a\":1}', NOW(6))"
        );
        $before = Harness::snapshot($this->eventStore);
        // A console process, as under Octane: the role decides, not runningInConsole().
        $this->boot(['DB_EVENT_STORE_ROLE' => 'reader']);
        $this->assertTrue($this->app->runningInConsole());
        $sent = [];
        DB::listen(function ($query) use (&$sent) {
            if (! preg_match('/^\s*(select|show)\b/i', $query->sql)) {
                $sent[] = $query->sql;
            }
        });

        foreach (self::paths() as $name => $write) {
            try {
                $write($this->event());
                $this->fail("$name wrote with the reader role");
            } catch (EventStoreWriteForbiddenException $e) {
                $this->assertStringContainsString('reader role (DB_EVENT_STORE_ROLE)', $e->getMessage(), $name);
                $this->assertStringContainsString('Events::emit', $e->getMessage(), $name);
            }
        }
        $this->assertSame([], $sent, 'no write statement reached the database');
        $this->assertSame($before, Harness::snapshot($this->eventStore), 'nothing was written');
        $this->assertSame(1, \SuiteX\EventBackbone\Models\EventStore::query()->count(), 'the reader reads');
    }

    public function test_web_requests_under_php_fpm_are_refused_every_write_path_and_may_read(): void
    {
        $this->migrate();
        $port = $this->startFpm($this->webEnv());
        foreach (array_keys(self::paths()) as $name) {
            $r = $this->request($port, $name);
            $this->assertSame('fpm-fcgi', $r['sapi'], $name);
            $this->assertSame(500, $r['status'], "$name: ".json_encode($r));
            $this->assertSame(EventStoreWriteForbiddenException::class, $r['exception'], "$name: ".$r['message']);
            $this->assertSame([], $r['sent'], "$name: no write statement reached the database");
        }
        $read = $this->request($port, 'read');
        $this->assertSame(200, $read['status'], json_encode($read));
        $this->assertSame('0', $read['body']);
        $this->assertSame(self::NOTHING_WRITTEN, Harness::snapshot($this->eventStore), 'nothing was written');
    }

    public function test_the_writer_appends_and_never_changes_or_removes(): void
    {
        $this->migrate();
        $this->boot(['DB_EVENT_STORE_ROLE' => 'writer']);
        $this->assertNotNull(\SuiteX\EventBackbone\Models\EventStore::create($this->event())->id);
        $this->assertNotNull(\SuiteX\EventBackbone\Models\EventStore::insertGetId(array_merge($this->event(), ['payload' => '{"a":1}', 'metadata' => null])));
        $refused = [
            'DB table upsert', 'DB table insertOrIgnore', 'DB table update', 'DB table delete', 'DB table truncate',
            'DB::affectingStatement', 'DB::unprepared', 'DB::update', 'DB::delete', 'Schema drop', 'EventStore::insertUsing',
        ];
        $paths = self::paths();
        foreach ($refused as $name) {
            try {
                $paths[$name]($this->event());
                $this->fail("$name ran with the writer role");
            } catch (EventStoreWriteForbiddenException $e) {
                $this->assertStringContainsString('writer role', $e->getMessage(), $name);
            }
        }
        $this->assertSame(['event_store' => 2, 'event_store_aggregates' => 1, 'event_store_merged_position' => 0, 'event_store_parked_events' => 0, 'event_store_parking' => 0, 'event_store_sequence' => 1], Harness::snapshot($this->eventStore));
    }

    public function test_the_reader_account_is_refused_by_the_database_itself(): void
    {
        $this->migrate();
        $bin = getenv('SUITEX_EVENTS_BIN');
        $this->assertNotFalse($bin, 'SUITEX_EVENTS_BIN names the suitex-events binary (scripts/test sets it)');
        $user = 'rd_'.bin2hex(random_bytes(4));
        [$host, $port, $admin, $adminPassword] = Harness::server();
        [$code, $out, $err] = Harness::run([$bin, 'grants', '--role', 'reader', '--user', $user, '--password-env', 'READER_PASSWORD'], [
            'DB_EVENT_STORE_HOST' => $host, 'DB_EVENT_STORE_PORT' => (string) $port, 'DB_EVENT_STORE_DATABASE' => $this->eventStore,
            'DB_EVENT_STORE_USERNAME' => $admin, 'DB_EVENT_STORE_PASSWORD' => $adminPassword, 'DB_EVENT_STORE_SSL_MODE' => 'disabled',
            'READER_PASSWORD' => 'reader-pass',
        ]);
        $this->assertSame(0, $code, $out.$err);
        try {
            // Even a process that claims the writer role cannot write with the reader's account.
            $this->boot(['DB_EVENT_STORE_ROLE' => 'writer', 'DB_EVENT_STORE_USERNAME' => $user, 'DB_EVENT_STORE_PASSWORD' => 'reader-pass']);
            $this->assertSame(0, \SuiteX\EventBackbone\Models\EventStore::query()->count(), 'the reader account reads');
            try {
                \SuiteX\EventBackbone\Models\EventStore::create($this->event());
                $this->fail('the reader account inserted');
            } catch (QueryException $e) {
                $this->assertStringContainsString('INSERT command denied', $e->getMessage());
            }
            $this->assertSame(self::NOTHING_WRITTEN, Harness::snapshot($this->eventStore));
        } finally {
            Harness::pdo()->exec("DROP USER IF EXISTS '$user'@'%'");
        }
    }

    public function test_an_unknown_role_is_refused_with_the_setting_named(): void
    {
        $this->migrate();
        $this->boot(['DB_EVENT_STORE_ROLE' => 'admin']);
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage('DB_EVENT_STORE_ROLE is "admin"');
        \SuiteX\EventBackbone\Models\EventStore::query()->count();
    }

    private function startFpm(array $env): int
    {
        $fpmBinary = '/usr/sbin/php-fpm'.PHP_MAJOR_VERSION.'.'.PHP_MINOR_VERSION;
        $this->assertFileExists($fpmBinary, 'php-fpm is installed (.ci/run installs it)');
        $this->assertFileExists('/usr/bin/cgi-fcgi', 'cgi-fcgi is installed (libfcgi-bin; .ci/run installs it)');
        $port = Harness::freePort();
        $this->fpmDir = sys_get_temp_dir().'/suitex-laravel-fpm-'.bin2hex(random_bytes(4));
        mkdir($this->fpmDir);
        file_put_contents("$this->fpmDir/fpm.conf", implode("\n", [
            '[global]',
            "error_log = $this->fpmDir/fpm.log",
            "pid = $this->fpmDir/fpm.pid",
            '[web]',
            "listen = 127.0.0.1:$port",
            'pm = static',
            'pm.max_children = 1',
            'clear_env = no',
            'catch_workers_output = yes',
            '',
        ]));
        $cmd = [$fpmBinary, '-F', '-R', '-y', "$this->fpmDir/fpm.conf"];
        $procEnv = array_merge(Harness::baseEnv(), $env, ['SUITEX_APP_DIR' => Harness::appDir()]);
        $this->fpm = proc_open($cmd, [1 => ['file', "$this->fpmDir/stdout", 'w'], 2 => ['file', "$this->fpmDir/stderr", 'w']], $pipes, null, $procEnv);
        $until = microtime(true) + 15;
        while (microtime(true) < $until) {
            $s = @fsockopen('127.0.0.1', $port, $errno, $errstr, 0.2);
            if ($s !== false) {
                fclose($s);

                return $port;
            }
            usleep(100_000);
        }
        $this->fail("php-fpm did not listen on $port: ".@file_get_contents("$this->fpmDir/stderr").@file_get_contents("$this->fpmDir/fpm.log"));
    }

    private function request(int $port, string $path): array
    {
        $query = http_build_query(['path' => $path, 'event' => json_encode($this->event())]);
        [, $out, $err] = Harness::run(['/usr/bin/cgi-fcgi', '-bind', '-connect', "127.0.0.1:$port"], [
            'SCRIPT_FILENAME' => realpath(dirname(__DIR__).'/Support/fpm_app.php'),
            'SCRIPT_NAME' => '/fpm_app.php',
            'REQUEST_METHOD' => 'GET',
            'QUERY_STRING' => $query,
        ]);
        $body = explode("\r\n\r\n", $out, 2)[1] ?? '';
        $decoded = json_decode($body, true);
        $this->assertIsArray($decoded, "$path: $out$err\n".@file_get_contents("$this->fpmDir/fpm.log"));

        return $decoded;
    }
}
