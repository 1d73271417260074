<?php

namespace SuiteX\EventBackbone\Config;

use InvalidArgumentException;

/**
 * Durations in the format every SuiteX setting uses (the Rust SDK reads them with `humantime`):
 * `500ms`, `10s`, `2m`, `1h 30m`; a bare number is milliseconds. So `SUITEX_WORKER_BACKOFF_MAX=30s`
 * means the same to `php artisan events:work` as to `suitex-events worker`.
 */
final class Duration
{
    private const UNITS = ['ms' => 1, 's' => 1000, 'm' => 60_000, 'min' => 60_000, 'h' => 3_600_000];

    /** `$value` in milliseconds; an InvalidArgumentException naming `$setting` when it is not a duration. */
    public static function milliseconds(string|int $value, string $setting): int
    {
        if (is_int($value) || ctype_digit(trim($value))) {
            return (int) $value;
        }
        $text = trim($value);
        if (! preg_match('/^(\s*\d+\s*(ms|min|s|m|h))+$/', $text)) {
            throw new InvalidArgumentException("{$setting} is \"{$value}\"; expected a duration such as 200ms, 30s or 2m (a bare number is milliseconds)");
        }
        preg_match_all('/(\d+)\s*(ms|min|s|m|h)/', $text, $parts, PREG_SET_ORDER);
        $ms = 0;
        foreach ($parts as [, $n, $unit]) {
            $ms += (int) $n * self::UNITS[$unit];
        }

        return $ms;
    }
}
