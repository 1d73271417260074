<?php

namespace Tests\Support;

use RuntimeException;

/**
 * The local emulators through their REST APIs: topics, subscriptions, pulling and acking on
 * Pub/Sub; buckets and objects on fake-gcs-server. The tests read back what the extension
 * published with these, not with the extension's own code.
 */
final class Emulator
{
    public static string $project = 'suitex-local';

    public static string $suffix;

    public static function pubsub(): string
    {
        return 'http://'.self::env('PUBSUB_EMULATOR_HOST');
    }

    public static function storage(): string
    {
        return 'http://'.self::env('STORAGE_EMULATOR_HOST');
    }

    public static function env(string $name): string
    {
        $v = getenv($name);
        if ($v === false || $v === '') {
            throw new RuntimeException("$name is not set: scripts/services start && eval \"\$(scripts/services env)\" (scripts/test does both)");
        }

        return $v;
    }

    /** Sets SUITEX_EVENTS_* to a topology of this run's own and creates it. */
    public static function provisionRun(): void
    {
        self::$suffix = bin2hex(random_bytes(5));
        $names = [
            'SUITEX_EVENTS_PROJECT' => self::$project,
            'SUITEX_EVENTS_RAW_TOPIC' => 'php-raw-'.self::$suffix,
            'SUITEX_EVENTS_RAW_SUBSCRIPTION' => 'php-raw-'.self::$suffix.'-sub',
            'SUITEX_EVENTS_PAYLOAD_BUCKET' => 'php-'.self::$suffix,
        ];
        foreach ($names as $k => $v) {
            putenv("$k=$v");
            $_ENV[$k] = $v;
        }
        self::createTopic($names['SUITEX_EVENTS_RAW_TOPIC']);
        self::createBucket($names['SUITEX_EVENTS_PAYLOAD_BUCKET']);
    }

    /**
     * One HTTP request; returns [status, body]. ext-curl, not PHP's http:// stream: the Pub/Sub
     * emulator keeps HTTP/1.0 connections open, so a stream read would wait for its timeout.
     */
    public static function request(string $method, string $url, ?array $body = null): array
    {
        $ch = curl_init($url);
        curl_setopt_array($ch, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_HTTPHEADER => ['Content-Type: application/json'],
            CURLOPT_POSTFIELDS => $body === null ? '' : json_encode($body),
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => 30,
        ]);
        $text = curl_exec($ch);
        if ($text === false) {
            throw new RuntimeException("$method $url: ".curl_error($ch));
        }

        return [curl_getinfo($ch, CURLINFO_RESPONSE_CODE), $text];
    }

    public static function createTopic(string $topic): void
    {
        [$status, $text] = self::request('PUT', self::pubsub().'/v1/projects/'.self::$project.'/topics/'.$topic);
        if ($status !== 200 && $status !== 409) {
            throw new RuntimeException("creating topic $topic: $status $text");
        }
    }

    /** A subscription on `topic` (ordered unless told otherwise); returns its name. */
    public static function createSubscription(string $topic, array $extra = []): string
    {
        $name = $topic.'-'.bin2hex(random_bytes(4));
        [$status, $text] = self::request('PUT', self::pubsub().'/v1/projects/'.self::$project.'/subscriptions/'.$name, array_merge([
            'topic' => 'projects/'.self::$project.'/topics/'.$topic,
            'ackDeadlineSeconds' => 60,
            'enableMessageOrdering' => true,
        ], $extra));
        if ($status !== 200) {
            throw new RuntimeException("creating subscription $name: $status $text");
        }

        return $name;
    }

    public static function createBucket(string $bucket): void
    {
        [$status, $text] = self::request('POST', self::storage().'/storage/v1/b?project='.self::$project, ['name' => $bucket]);
        if ($status !== 200 && $status !== 409) {
            throw new RuntimeException("creating bucket $bucket: $status $text");
        }
    }

    /**
     * Pulls until `n` messages arrived (or `seconds` passed) and acks them. Each message is
     * ['data' => decoded JSON text, 'attributes' => [...], 'ordering_key' => ...].
     */
    public static function receive(string $subscription, int $n, int $seconds = 30): array
    {
        $url = self::pubsub().'/v1/projects/'.self::$project.'/subscriptions/'.$subscription;
        $got = [];
        $until = microtime(true) + $seconds;
        while (count($got) < $n && microtime(true) < $until) {
            [$status, $text] = self::request('POST', $url.':pull', ['maxMessages' => 100, 'returnImmediately' => true]);
            $received = json_decode($text, true)['receivedMessages'] ?? [];
            if (! $received) {
                usleep(100_000);
                continue;
            }
            foreach ($received as $r) {
                $got[] = [
                    'data' => base64_decode($r['message']['data'] ?? ''),
                    'attributes' => $r['message']['attributes'] ?? [],
                    'ordering_key' => $r['message']['orderingKey'] ?? '',
                ];
            }
            self::request('POST', $url.':acknowledge', ['ackIds' => array_column($received, 'ackId')]);
        }

        return $got;
    }

    /** The extension file under test; scripts/test exports it so child processes load the same build. */
    public static function extensionPath(): string
    {
        $path = getenv('SUITEX_EVENTS_PHP_EXT');
        if ($path === false || ! is_file($path)) {
            throw new RuntimeException('SUITEX_EVENTS_PHP_EXT must name the extension file (scripts/test sets it)');
        }

        return $path;
    }

    /**
     * Runs a PHP script in a new process with this extension loaded and this run's environment;
     * returns [exit status, stdout, stderr]. A process still running after 60 s is killed
     * (status 137): a hang fails the test instead of stalling the suite.
     */
    public static function php(array $args, array $ini = []): array
    {
        $cmd = [PHP_BINARY, '-n', '-d', 'extension='.self::extensionPath()];
        foreach ($ini as $k => $v) {
            array_push($cmd, '-d', "$k=$v");
        }

        return self::run(array_merge($cmd, $args), getenv());
    }

    /** Runs `cmd` with `env`, killed after `seconds`; returns [exit status, stdout, stderr]. */
    public static function run(array $cmd, array $env, int $seconds = 60): array
    {
        $cmd = array_merge(['/usr/bin/timeout', '-s', 'KILL', (string) $seconds], $cmd);
        $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);

        return [proc_close($proc), $out, $err];
    }

    /** An object's bytes, straight from fake-gcs-server. */
    public static function download(string $bucket, string $object): string
    {
        [$status, $text] = self::request('GET', self::storage().'/storage/v1/b/'.$bucket.'/o/'.rawurlencode($object).'?alt=media');
        if ($status !== 200) {
            throw new RuntimeException("downloading gs://$bucket/$object: $status");
        }

        return $text;
    }
}
