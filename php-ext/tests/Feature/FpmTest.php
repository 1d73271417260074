<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use Tests\Support\Emulator;
use Tests\Support\OtlpReceiver;

/**
 * The extension under php-fpm: loaded by the master, used by the workers it forks (and
 * re-forks after pm.max_requests). The web SAPI only emits: there is no Inbox class.
 */
final class FpmTest extends TestCase
{
    private $fpm;

    private string $dir;

    protected function tearDown(): void
    {
        if (is_resource($this->fpm)) {
            proc_terminate($this->fpm, SIGTERM);
            proc_close($this->fpm);
        }
    }

    public function test_fpm_workers_emit_and_have_no_consumer(): void
    {
        $subscription = Emulator::createSubscription(getenv('SUITEX_EVENTS_RAW_TOPIC'));
        $port = $this->startFpm([]);

        $served = [];
        for ($i = 0; $i < 8; $i++) {
            $served[] = $this->request($port, "r$i");
        }
        $pids = array_unique(array_column($served, 'pid'));
        $this->assertGreaterThanOrEqual(3, count($pids), 'workers were re-forked after pm.max_requests');
        foreach ($served as $s) {
            $this->assertSame('fpm-fcgi', $s['sapi']);
            $this->assertFalse($s['inbox_class'], 'the web SAPI has no Inbox');
            $this->assertSame('inline', $s['receipt']['payload_location']);
            $this->assertFalse($s['receipt']['spooled']);
            $this->assertStringStartsWith('direct:', $s['mode']);
        }

        $ids = array_map(fn ($s) => $s['receipt']['event_id'], $served);
        $received = array_map(fn ($m) => $m['attributes']['event_id'], Emulator::receive($subscription, 8));
        sort($ids);
        sort($received);
        $this->assertSame($ids, $received, 'every request\'s event arrived once');
        $this->assertStringNotContainsString('SIGSEGV', (string) file_get_contents("$this->dir/fpm.log"));
    }

    public function test_in_spool_mode_fpm_workers_emit_while_pubsub_is_down_and_the_relay_publishes_later(): void
    {
        $subscription = Emulator::createSubscription(getenv('SUITEX_EVENTS_RAW_TOPIC'));
        $spool = sys_get_temp_dir().'/suitex-fpm-spool-'.bin2hex(random_bytes(4));
        // Pub/Sub "down" for the web tier: its address is a port nobody listens on.
        $port = $this->startFpm(['suitex_events.spool' => $spool, 'suitex_events.pubsub_emulator_host' => '127.0.0.1:'.self::freePort()]);

        $served = [];
        for ($i = 0; $i < 6; $i++) {
            $served[] = $this->request($port, "s$i");
        }
        foreach ($served as $s) {
            $this->assertTrue($s['receipt']['spooled'], 'spooled, not published');
            $this->assertSame('', $s['receipt']['message_id']);
            $this->assertStringContainsString("spool: emit_event() appends durably to $spool", $s['mode']);
        }
        $this->assertSame([], Emulator::receive($subscription, 1, 2), 'nothing reached Pub/Sub from the web tier');

        // The relay, with the real emulator, publishes what the workers spooled.
        $bin = getenv('SUITEX_EVENTS_BIN');
        $this->assertIsString($bin, 'SUITEX_EVENTS_BIN names the suitex-events binary (scripts/test sets it)');
        [$code, $out, $err] = Emulator::run([$bin, 'relay', '--until-empty'], array_merge(getenv(), ['SUITEX_EVENTS_SPOOL' => $spool]));
        $this->assertSame(0, $code, $out.$err);
        $ids = array_map(fn ($s) => $s['receipt']['event_id'], $served);
        $received = array_map(fn ($m) => $m['attributes']['event_id'], Emulator::receive($subscription, 6));
        sort($ids);
        sort($received);
        $this->assertSame($ids, $received, 'every spooled event was published once the relay ran');
        exec('rm -rf '.escapeshellarg($spool));
    }

    public function test_a_request_with_a_traceparent_header_emits_an_event_that_continues_its_trace(): void
    {
        $trace = '4bf92f3577b34da6a3ce929d0e0e4736';
        $requestSpan = '00f067aa0ba902b7';
        $receiver = OtlpReceiver::start();
        try {
            $subscription = Emulator::createSubscription(getenv('SUITEX_EVENTS_RAW_TOPIC'));
            $fpm = $this->startFpm([], $receiver->env());
            $served = $this->request($fpm, 'traced', [
                'HTTP_TRACEPARENT' => "00-$trace-$requestSpan-01",
                'HTTP_TRACESTATE' => 'suitex=web',
            ]);
            $plain = $this->request($fpm, 'plain');

            $messages = [];
            foreach (Emulator::receive($subscription, 2) as $m) {
                $messages[$m['attributes']['event_id']] = $m;
            }
            $traced = $messages[$served['receipt']['event_id']];
            $this->assertMatchesRegularExpression("/^00-$trace-[0-9a-f]{16}-01\$/", $traced['attributes']['googclient_traceparent']);
            $this->assertSame('suitex=web', $traced['attributes']['googclient_tracestate']);
            $body = json_decode($traced['data'], true);
            $this->assertSame($traced['attributes']['googclient_traceparent'], $body['metadata']['traceparent'], 'the envelope carries the same context');
            // A request without the header: its create span starts a trace of its own.
            $this->assertDoesNotMatchRegularExpression("/^00-$trace-/", $messages[$plain['receipt']['event_id']]['attributes']['googclient_traceparent']);

            // The spans php-fpm's worker exported: create, a child of the request's span, whose
            // context the event carries; publish, a child of the request's span linked to it.
            $create = $receiver->span(getenv('SUITEX_EVENTS_RAW_TOPIC').' create', $trace, 'suitex-web');
            $this->assertSame($requestSpan, $create['parent_span_id']);
            $this->assertSame('producer', $create['kind']);
            $this->assertSame('gcp_pubsub', $create['attributes']['messaging.system']);
            $this->assertSame($served['receipt']['event_id'], $create['attributes']['event_id']);
            $this->assertSame("00-$trace-{$create['span_id']}-01", $traced['attributes']['googclient_traceparent']);
            $publish = $receiver->span(getenv('SUITEX_EVENTS_RAW_TOPIC').' publish', $trace, 'suitex-web');
            $this->assertSame($requestSpan, $publish['parent_span_id']);
            $this->assertContains(['trace_id' => $trace, 'span_id' => $create['span_id']], $publish['links']);
        } finally {
            $receiver->stop();
        }
    }

    /**
     * The whole way: a php-fpm request with a traceparent header emits; `suitex-events worker`
     * stores the event and its feeder publishes it to events.merged; every span the receiver gets
     * belongs to the request's trace or links to it, and the ledger row holds the context.
     */
    public function test_one_trace_from_a_php_fpm_request_to_the_ledger_row_and_events_merged(): void
    {
        $this->oneTrace(false);
    }

    /** The same in spool mode: the relay publishes what the request spooled, context unchanged. */
    public function test_one_trace_through_the_spool_and_the_relay(): void
    {
        $this->oneTrace(true);
    }

    private function oneTrace(bool $spooled): void
    {
        $trace = '4bf92f3577b34da6a3ce929d0e0e4736';
        $requestSpan = '00f067aa0ba902b7';
        $bin = getenv('SUITEX_EVENTS_BIN');
        $this->assertIsString($bin, 'SUITEX_EVENTS_BIN names the suitex-events binary (scripts/test sets it)');
        // A topology and a ledger database of this test's own.
        $run = 'fpmtrace-'.bin2hex(random_bytes(4));
        $db = str_replace('-', '_', $run);
        $names = [
            'SUITEX_EVENTS_RAW_TOPIC' => "$run-raw", 'SUITEX_EVENTS_RAW_SUBSCRIPTION' => "$run-raw-sub",
            'SUITEX_EVENTS_MERGED_TOPIC' => "$run-merged", 'SUITEX_EVENTS_DLQ_TOPIC' => "$run-dlq",
            'SUITEX_EVENTS_DLQ_SUBSCRIPTION' => "$run-dlq-sub", 'SUITEX_EVENTS_PAYLOAD_BUCKET' => $run,
            'DB_EVENT_STORE_HOST' => '127.0.0.1', 'DB_EVENT_STORE_PORT' => '3306', 'DB_EVENT_STORE_DATABASE' => $db,
            'DB_EVENT_STORE_USERNAME' => 'root', 'DB_EVENT_STORE_PASSWORD' => '',
        ];
        $env = array_merge(getenv(), $names);
        (new \PDO('mysql:host=127.0.0.1;port=3306', 'root', ''))->exec("CREATE DATABASE `$db`");
        foreach ([['provision', '--merged-subscription', "$run-merged-sub"], ['migrate']] as $args) {
            [$code, $out, $err] = Emulator::run(array_merge([$bin], $args), $env);
            $this->assertSame(0, $code, implode(' ', $args).": $out$err");
        }
        $receiver = OtlpReceiver::start();
        $otel = $receiver->env();
        $worker = proc_open([$bin, 'worker'], [1 => ['file', '/dev/null', 'w'], 2 => ['file', "$receiver->file.worker.log", 'w']], $pipes, null,
            array_merge($env, $otel, ['SUITEX_WORKER_METRICS_ADDR' => 'off', 'SUITEX_WORKER_BATCH_WAIT' => '10ms']));
        try {
            $spool = sys_get_temp_dir()."/suitex-$run-spool";
            $fpm = $this->startFpm($spooled ? ['suitex_events.spool' => $spool] : [], array_merge($names, $otel));
            $served = $this->request($fpm, 'e2e', ['HTTP_TRACEPARENT' => "00-$trace-$requestSpan-01"]);
            $eventId = $served['receipt']['event_id'];
            $this->assertSame($spooled, $served['receipt']['spooled']);
            if ($spooled) {
                [$code, $out, $err] = Emulator::run([$bin, 'relay', '--until-empty'],
                    array_merge($env, $otel, ['SUITEX_EVENTS_SPOOL' => $spool, 'SUITEX_RELAY_METRICS_ADDR' => 'off']));
                $this->assertSame(0, $code, $out.$err);
                exec('rm -rf '.escapeshellarg($spool));
            }
            $merged = Emulator::receive("$run-merged-sub", 1, 60);
            $this->assertCount(1, $merged, 'the event reached events.merged');
            $this->assertSame($eventId, $merged[0]['attributes']['event_id']);

            $raw = $names['SUITEX_EVENTS_RAW_TOPIC'];
            $sub = $names['SUITEX_EVENTS_RAW_SUBSCRIPTION'];
            $create = $receiver->span("$raw create", $trace, 'suitex-web');
            $this->assertSame($requestSpan, $create['parent_span_id']);
            if ($spooled) {
                $relayed = $receiver->linkedSpan("$raw publish", $trace, $create['span_id']);
                $this->assertSame('suitex-events-relay', $relayed['service']);
            } else {
                $publish = $receiver->span("$raw publish", $trace, 'suitex-web');
                $this->assertSame($requestSpan, $publish['parent_span_id']);
            }
            $receive = $receiver->span("$sub receive", $trace, 'suitex-events-worker');
            $this->assertSame($create['span_id'], $receive['parent_span_id'], 'receive continues the create span');
            $ack = $receiver->span("$sub ack", $trace, 'suitex-events-worker');
            $this->assertSame($receive['span_id'], $ack['parent_span_id']);
            // The batch's INSERT and the feeder's publish are linked to the request's trace.
            $insert = $receiver->linkedSpan('INSERT event_store', $trace, $receive['span_id']);
            $this->assertSame('mysql', $insert['attributes']['db.system']);
            $receiver->linkedSpan($names['SUITEX_EVENTS_MERGED_TOPIC'].' publish', $trace, $create['span_id']);

            $metadata = (new \PDO("mysql:host=127.0.0.1;port=3306;dbname=$db", 'root', ''))
                ->query("SELECT CAST(metadata AS CHAR) FROM event_store WHERE event_id = '$eventId'")->fetchColumn();
            $this->assertSame("00-$trace-{$create['span_id']}-01", json_decode($metadata, true)['traceparent'], 'the ledger row holds the context');
            $this->assertSame("00-$trace-{$create['span_id']}-01", $merged[0]['attributes']['googclient_traceparent']);
        } finally {
            proc_terminate($worker, SIGKILL);
            proc_close($worker);
            $receiver->stop();
            @unlink("$receiver->file.worker.log");
            (new \PDO('mysql:host=127.0.0.1;port=3306', 'root', ''))->exec("DROP DATABASE IF EXISTS `$db`");
        }
    }

    /** Starts php-fpm (static pool of 2, re-forked every 3 requests) with `$ini`; returns its port. */
    private function startFpm(array $ini, array $env = []): int
    {
        $fpmBinary = '/usr/sbin/php-fpm'.PHP_MAJOR_VERSION.'.'.PHP_MINOR_VERSION;
        $this->assertFileExists($fpmBinary, 'php-fpm is installed (.ci/run installs it)');
        $this->assertFileExists('/usr/bin/cgi-fcgi', 'cgi-fcgi is installed (libfcgi-bin; .ci/run installs it)');
        $port = self::freePort();
        $this->dir = sys_get_temp_dir().'/suitex-fpm-'.bin2hex(random_bytes(4));
        mkdir($this->dir);
        file_put_contents("$this->dir/fpm.conf", implode("\n", [
            '[global]',
            "error_log = $this->dir/fpm.log",
            "pid = $this->dir/fpm.pid",
            '[web]',
            "listen = 127.0.0.1:$port",
            'pm = static',
            'pm.max_children = 2',
            'pm.max_requests = 3',
            'clear_env = no',
            'catch_workers_output = yes',
            '',
        ]));
        $cmd = [$fpmBinary, '-F', '-R', '-n', '-y', "$this->dir/fpm.conf", '-d', 'extension='.Emulator::extensionPath()];
        foreach ($ini as $k => $v) {
            array_push($cmd, '-d', "$k=$v");
        }
        $this->fpm = proc_open($cmd, [1 => ['file', "$this->dir/stdout", 'w'], 2 => ['file', "$this->dir/stderr", 'w']], $pipes, null, array_merge(getenv(), $env));
        $this->waitForPort($port);

        return $port;
    }

    /** One request to the fixture; `$headers` are FastCGI parameters (`HTTP_*`). */
    private function request(int $port, string $id, array $headers = []): array
    {
        $script = realpath(__DIR__.'/../fixtures/fpm-emit.php');
        $env = $headers + ['SCRIPT_FILENAME' => $script, 'SCRIPT_NAME' => '/fpm-emit.php', 'REQUEST_METHOD' => 'GET', 'QUERY_STRING' => "request=$id"];
        [, $out, $err] = Emulator::run(['/usr/bin/cgi-fcgi', '-bind', '-connect', "127.0.0.1:$port"], $env, 30);
        $body = explode("\r\n\r\n", $out, 2)[1] ?? '';
        $decoded = json_decode($body, true);
        $this->assertIsArray($decoded, "request $id: $out$err\n".@file_get_contents("$this->dir/fpm.log"));

        return $decoded;
    }

    private function waitForPort(int $port): void
    {
        $until = microtime(true) + 15;
        while (microtime(true) < $until) {
            $s = @fsockopen('127.0.0.1', $port, $errno, $errstr, 0.2);
            if ($s !== false) {
                fclose($s);

                return;
            }
            usleep(100_000);
        }
        $this->fail("php-fpm did not listen on $port: ".@file_get_contents("$this->dir/stderr").@file_get_contents("$this->dir/fpm.log"));
    }

    private static function freePort(): int
    {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
        fclose($server);

        return $port;
    }
}
