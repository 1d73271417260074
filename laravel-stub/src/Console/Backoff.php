<?php

namespace SuiteX\EventBackbone\Console;

/**
 * Exponential back-off with full jitter, without a limit on attempts: the worker waits out a
 * failure for as long as it lasts, and checks for SIGTERM between waits (which is why the
 * framework's bounded, blocking retry() helper does not fit).
 */
final class Backoff
{
    private int $attempt = 0;

    public function __construct(private int $initialMs, private int $maxMs)
    {
    }

    /** Milliseconds to wait before the next try. */
    public function next(): int
    {
        $ceiling = (int) min($this->maxMs, $this->initialMs * (2 ** min($this->attempt, 20)));
        $this->attempt++;

        return random_int(intdiv($ceiling, 2), max(intdiv($ceiling, 2), $ceiling));
    }

    public function reset(): void
    {
        $this->attempt = 0;
    }
}
