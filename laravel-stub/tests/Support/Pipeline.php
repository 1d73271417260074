<?php

namespace Tests\Support;

use RuntimeException;

/**
 * A test's own event pipeline on the local emulators: topics, subscriptions and bucket with
 * unique names (created by `suitex-events provision`), the environment that points the
 * extension and the workers at them, and the emulator's REST API for what a test publishes or
 * reads itself (a raw message, events.merged, events.dlq).
 */
final class Pipeline
{
    /** @var array<string,string> */
    public array $env;

    public readonly string $merged;

    public function __construct(string $prefix)
    {
        $suffix = bin2hex(random_bytes(4));
        $this->merged = "$prefix-merged-$suffix-sub";
        $this->env = [
            'PUBSUB_EMULATOR_HOST' => Emulator::env('PUBSUB_EMULATOR_HOST'),
            'STORAGE_EMULATOR_HOST' => Emulator::env('STORAGE_EMULATOR_HOST'),
            'SUITEX_EVENTS_PROJECT' => 'suitex-local',
            'SUITEX_EVENTS_RAW_TOPIC' => "$prefix-raw-$suffix",
            'SUITEX_EVENTS_RAW_SUBSCRIPTION' => "$prefix-raw-$suffix-sub",
            'SUITEX_EVENTS_MERGED_TOPIC' => "$prefix-merged-$suffix",
            'SUITEX_EVENTS_DLQ_TOPIC' => "$prefix-dlq-$suffix",
            'SUITEX_EVENTS_DLQ_SUBSCRIPTION' => "$prefix-dlq-$suffix-sub",
            'SUITEX_EVENTS_PAYLOAD_BUCKET' => "$prefix-$suffix",
            'SUITEX_WORKER_METRICS_ADDR' => 'off',
        ];
    }

    /**
     * The arguments that give the in-repo Pub/Sub fake (`pubsub-fake`, tests/pubsub-fake) this
     * pipeline's topology as production has it — the fake runs message ordering and the
     * dead-letter policy together, which the official emulator cannot, and speaks gRPC only, so
     * `suitex-events provision` (REST) cannot make it there: the topics; events.raw-sub ordered
     * with the dead-letter policy (5 attempts; a nack comes back at once); events.dlq-sub; the
     * workers' dead-letter watch; a subscription on events.merged. Creates the bucket.
     */
    public function fakeTopology(): array
    {
        Emulator::createBucket($this->env['SUITEX_EVENTS_PAYLOAD_BUCKET']);
        $project = 'projects/'.$this->env['SUITEX_EVENTS_PROJECT'];
        $topic = fn (string $setting) => "$project/topics/{$this->env[$setting]}";
        $subscription = fn (string $name, string $topicSetting, string $options = '') => [
            '--subscription', "$project/subscriptions/$name=".$topic($topicSetting).$options,
        ];

        return array_merge(
            ['--topic', $topic('SUITEX_EVENTS_RAW_TOPIC'), '--topic', $topic('SUITEX_EVENTS_MERGED_TOPIC'), '--topic', $topic('SUITEX_EVENTS_DLQ_TOPIC')],
            $subscription($this->env['SUITEX_EVENTS_RAW_SUBSCRIPTION'], 'SUITEX_EVENTS_RAW_TOPIC', ',ordered,dead-letter='.$topic('SUITEX_EVENTS_DLQ_TOPIC')),
            $subscription($this->env['SUITEX_EVENTS_DLQ_SUBSCRIPTION'], 'SUITEX_EVENTS_DLQ_TOPIC'),
            $subscription($this->env['SUITEX_EVENTS_DLQ_TOPIC'].'-watch', 'SUITEX_EVENTS_DLQ_TOPIC'),
            $subscription($this->merged, 'SUITEX_EVENTS_MERGED_TOPIC'),
        );
    }

    /** Points the pipeline at another Pub/Sub service (host:port), e.g. the fake. */
    public function usePubSub(string $host): void
    {
        $this->env['PUBSUB_EMULATOR_HOST'] = $host;
    }

    /** The file an environment variable names (scripts/test sets them). */
    public static function required(string $name, string $what): string
    {
        $v = getenv($name);
        if ($v === false || ! is_file($v)) {
            throw new RuntimeException("$name must name $what (scripts/test sets it)");
        }

        return $v;
    }

    /**
     * `suitex-events provision --without-ordering`: events.raw-sub with the dead-letter policy
     * (the official emulator cannot combine it with ordering), plus a subscription on
     * events.merged for the test to read. `$immediateRedelivery`: a nacked message comes back at
     * once instead of after Pub/Sub's retry back-off (10 s and more). `$ackDeadline`: the
     * subscriptions' ack deadline in seconds instead of production's 60, for a test that waits
     * for the leases of a killed worker to run out.
     */
    public function provision(bool $immediateRedelivery = false, ?int $ackDeadline = null): void
    {
        $bin = self::required('SUITEX_EVENTS_BIN', 'the suitex-events binary');
        $flags = $immediateRedelivery ? ['--immediate-redelivery'] : [];
        if ($ackDeadline !== null) {
            $flags = [...$flags, '--ack-deadline', (string) $ackDeadline];
        }
        [$code, $out, $err] = Harness::run([$bin, 'provision', '--without-ordering', ...$flags, '--merged-subscription', $this->merged], $this->env);
        if ($code !== 0) {
            throw new RuntimeException("suitex-events provision failed:\n$out\n$err");
        }
    }

    /** Emits `$events` through the extension in a PHP process of their own; returns their ids. */
    public function emit(array $events): array
    {
        $file = tempnam(sys_get_temp_dir(), 'events');
        file_put_contents($file, json_encode($events));
        [$code, $out, $err] = Harness::run([PHP_BINARY, '-d', 'extension='.Emulator::extensionPath(), __DIR__.'/emit_events.php', $file], $this->env);
        unlink($file);
        if ($code !== 0) {
            throw new RuntimeException("emitting failed:\n$out\n$err");
        }

        return json_decode($out, true, 512, JSON_THROW_ON_ERROR);
    }

    /** Publishes one message to events.raw as it is (not through the SDK: it may be anything). */
    public function publishRaw(string $data, array $attributes = []): void
    {
        $message = ['data' => base64_encode($data)];
        if ($attributes !== []) {
            $message['attributes'] = $attributes;
        }
        $this->rest("topics/{$this->env['SUITEX_EVENTS_RAW_TOPIC']}:publish", ['messages' => [$message]]);
    }

    /**
     * Takes what a subscription holds (acking it), until `$done` says it has enough or nothing
     * more arrived for `$quietSeconds` (the official emulator can pause deliveries for up to an
     * ack deadline under load). Each message is ['data' => string, 'attributes' => array].
     */
    public function take(string $subscription, callable $done, float $quietSeconds): array
    {
        $out = [];
        $quietUntil = microtime(true) + $quietSeconds;
        while (! $done($out) && microtime(true) < $quietUntil) {
            $got = $this->rest("subscriptions/$subscription:pull", ['maxMessages' => 1000, 'returnImmediately' => true])['receivedMessages'] ?? [];
            if ($got === []) {
                usleep(200_000);
                continue;
            }
            $quietUntil = microtime(true) + $quietSeconds;
            $this->rest("subscriptions/$subscription:acknowledge", ['ackIds' => array_column($got, 'ackId')]);
            foreach ($got as $m) {
                $out[] = ['data' => base64_decode($m['message']['data'] ?? ''), 'attributes' => $m['message']['attributes'] ?? []];
            }
        }

        return $out;
    }

    /**
     * events.merged, decoded and grouped by event: event_id => its merged messages (at least
     * once: an event may be there twice), until `$events` distinct events came. events.merged is
     * fed from the ledger; with `$feederEnv` (the event store's settings) a `suitex-events feed`
     * runs meanwhile, as it would beside `events:work` in production, and stops (recording its
     * position) before this returns.
     */
    public function merged(int $events, float $quietSeconds = 90.0, ?array $feederEnv = null): array
    {
        $feeder = null;
        if ($feederEnv !== null) {
            $bin = self::required('SUITEX_EVENTS_BIN', 'the suitex-events binary');
            $log = sys_get_temp_dir().'/suitex-feed-'.getmypid().'.log';
            $feeder = proc_open([$bin, 'feed'], [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', $log, 'a']],
                $pipes, null, array_merge(Harness::baseEnv(), $this->env, $feederEnv));
            if (! is_resource($feeder)) {
                throw new RuntimeException('suitex-events feed did not start');
            }
        }
        try {
            return $this->takeMerged($events, $quietSeconds);
        } finally {
            if ($feeder !== null) {
                proc_terminate($feeder, SIGTERM);
                proc_close($feeder);
            }
        }
    }

    private function takeMerged(int $events, float $quietSeconds): array
    {
        $group = function (array $messages): array {
            $out = [];
            foreach ($messages as $m) {
                $body = json_decode($m['data'], true, 512, JSON_THROW_ON_ERROR);
                $out[$body['event_id']][] = $body;
            }

            return $out;
        };

        return $group($this->take($this->merged, fn ($got) => count($group($got)) >= $events, $quietSeconds));
    }

    /** What reaches events.dlq-sub: until `$n` messages came, or none for `$quietSeconds`. */
    public function deadLetters(int $n, float $quietSeconds): array
    {
        return $this->take($this->env['SUITEX_EVENTS_DLQ_SUBSCRIPTION'], fn ($got) => count($got) >= $n, $quietSeconds);
    }

    /** One POST to the emulator's REST API (through the PHP extension suite's Emulator::request). */
    private function rest(string $path, array $body): array
    {
        $url = "http://{$this->env['PUBSUB_EMULATOR_HOST']}/v1/projects/{$this->env['SUITEX_EVENTS_PROJECT']}/$path";
        [$status, $text] = Emulator::request('POST', $url, $body);
        if ($status !== 200) {
            throw new RuntimeException("Pub/Sub emulator: POST $path: $status $text");
        }

        return json_decode($text, true) ?? [];
    }
}
