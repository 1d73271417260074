<?php

namespace Tests\Support;

/**
 * The receiving end of a real OTLP exporter (tests/otlp-receiver.py: an OTLP/HTTP listener that
 * decodes with the OpenTelemetry protobuf definitions and writes one JSON span a line — name,
 * service, kind, trace_id, span_id, parent_span_id, links, attributes). Shared by the extension's
 * and the Laravel package's suites.
 */
final class OtlpReceiver
{
    /** @param resource $process */
    private function __construct(private $process, public readonly int $port, public readonly string $file)
    {
    }

    /** Starts a receiver on a free port; fails loudly when it cannot. */
    public static function start(): self
    {
        $python = Emulator::env('SUITEX_TEST_PYTHON');
        $file = sys_get_temp_dir().'/suitex-spans-'.bin2hex(random_bytes(4)).'.jsonl';
        $process = proc_open([$python, realpath(__DIR__.'/../../../tests/otlp-receiver.py'), $file], [1 => ['pipe', 'w'], 2 => STDERR], $pipes);
        $port = (int) trim((string) fgets($pipes[1]));
        if ($port <= 0) {
            proc_terminate($process, SIGKILL);
            throw new \RuntimeException('the OTLP receiver did not start (scripts/services start installs its Python packages)');
        }

        return new self($process, $port, $file);
    }

    /** The OTEL_* settings that export to this receiver, quickly. */
    public function env(): array
    {
        return ['OTEL_EXPORTER_OTLP_ENDPOINT' => "http://127.0.0.1:{$this->port}", 'OTEL_BSP_SCHEDULE_DELAY' => '100'];
    }

    /** Waits up to 20 s for the span `$name` in `$trace` (of `$service`, when given). */
    public function span(string $name, string $trace, ?string $service = null): array
    {
        return $this->waitFor(fn (array $s) => $s['name'] === $name && $s['trace_id'] === $trace
            && ($service === null || $s['service'] === $service), "$name span".($service === null ? '' : " of $service")." in trace $trace");
    }

    /** Waits up to 20 s for a span named `$name` linked to span `$spanId` of `$trace`. */
    public function linkedSpan(string $name, string $trace, string $spanId): array
    {
        return $this->waitFor(fn (array $s) => $s['name'] === $name
            && in_array(['trace_id' => $trace, 'span_id' => $spanId], $s['links'], true), "$name span linked to $trace/$spanId");
    }

    /** Waits up to 20 s for a span `$match` accepts; throws naming `$what` and what arrived. */
    public function waitFor(callable $match, string $what): array
    {
        $until = microtime(true) + 20;
        do {
            foreach (is_file($this->file) ? file($this->file, FILE_IGNORE_NEW_LINES) : [] as $line) {
                $span = json_decode($line, true);
                if ($match($span)) {
                    return $span;
                }
            }
            usleep(100_000);
        } while (microtime(true) < $until);
        throw new \PHPUnit\Framework\AssertionFailedError("no $what within 20 s; received: ".@file_get_contents($this->file));
    }

    public function stop(): void
    {
        proc_terminate($this->process, SIGKILL);
        proc_close($this->process);
        @unlink($this->file);
    }
}
