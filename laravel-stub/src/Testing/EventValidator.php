<?php

namespace SuiteX\EventBackbone\Testing;

use Closure;
use DateTimeInterface;
use JsonSerializable;
use SuiteX\Events\ValidationException;

/**
 * The suitex_events extension's event validation, in PHP, for Events::fake(): a bad event in a
 * test fails as it would in production — the same SuiteX\Events\ValidationException, the same
 * message naming the field and the limit — with or without the extension loaded. The rules are
 * the SDK's (sdk/src/envelope.rs); a test runs the SDK's corpus of bad events
 * (sdk/tests/data/bad_envelopes.json) through both, so they cannot drift apart unnoticed.
 */
final class EventValidator
{
    private const FIELDS = ['event_id', 'account_id', 'aggregate_type', 'aggregate_id', 'event_type', 'occurred_at', 'payload', 'payload_ref', 'metadata', 'schema_version'];

    private const ACCOUNT_ID_RANGE = 'must be an integer from 1 to 18446744073709551615';

    private const METADATA_STRING_KEYS = ['correlation_id', 'causation_id', 'actor', 'source'];

    private const MAX_DEPTH = 256;

    /**
     * The event as the extension would send it (event_id and occurred_at filled in), or a
     * ValidationException. `$maxPayload` is SUITEX_EVENTS_MAX_PAYLOAD in bytes.
     */
    public static function validate(array $event, int $maxPayload = 32 * 1024 * 1024): array
    {
        self::ensureExceptionClass();
        $payloadJson = null;
        $fields = [];
        foreach ($event as $name => $value) {
            if (is_int($name)) {
                throw self::invalid('', "$name is a numeric key; an event is an array keyed by field name");
            }
            if ($name === 'payload_json') {
                if (array_key_exists('payload', $event)) {
                    throw self::invalid('payload_json', 'must not be given together with payload');
                }
                if (! is_string($value)) {
                    throw self::invalid('payload_json', 'must be a string of JSON text');
                }
                json_decode($value);
                if (json_last_error() !== JSON_ERROR_NONE) {
                    throw self::invalid('payload_json', 'is not valid JSON: '.json_last_error_msg());
                }
                $payloadJson = $value;
                continue;
            }
            $fields[$name] = self::toJson($value, $name, 0);
        }
        if ($payloadJson !== null) {
            $fields['payload'] = json_decode($payloadJson, false);
        }
        foreach (array_keys($fields) as $name) {
            if (! in_array($name, self::FIELDS, true)) {
                throw self::invalid('event', sprintf('has unknown field %s; the fields are %s', json_encode((string) $name), implode(', ', self::FIELDS)));
            }
        }
        if (array_key_exists('schema_version', $fields)) {
            $v = $fields['schema_version'];
            if (! is_int($v)) {
                throw self::invalid('schema_version', 'must be the integer 1; got '.self::typeName($v));
            }
            if ($v !== 1) {
                throw self::invalid('schema_version', "$v is not supported; this SDK reads version 1");
            }
        }
        $eventId = array_key_exists('event_id', $fields) ? self::eventId($fields['event_id']) : self::uuidV7();
        $accountId = self::accountId(self::required($fields, 'account_id'));
        $aggregateType = self::name('aggregate_type', self::string(self::required($fields, 'aggregate_type'), 'aggregate_type'), '/^[a-z0-9_.\-]$/', "a-z, 0-9, '_', '.', '-'");
        $aggregateId = self::aggregateId(self::string(self::required($fields, 'aggregate_id'), 'aggregate_id'));
        $eventType = self::name('event_type', self::string(self::required($fields, 'event_type'), 'event_type'), '/^[a-zA-Z0-9_.\-]$/', "a-z, A-Z, 0-9, '_', '.', '-'");
        $occurredAt = array_key_exists('occurred_at', $fields)
            ? self::occurredAt($fields['occurred_at'])
            : gmdate('Y-m-d\TH:i:s').sprintf('.%06dZ', (int) (microtime(true) * 1e6) % 1_000_000);
        if (array_key_exists('payload_ref', $fields)) {
            throw self::invalid('payload_ref', array_key_exists('payload', $fields)
                ? 'must not be given together with payload'
                : 'is set by the SDK when it offloads a payload; give the payload inline');
        }
        if (! array_key_exists('payload', $fields)) {
            throw self::invalid('payload', 'is missing; give null for an event without a payload');
        }
        $metadata = $fields['metadata'] ?? null;
        if ($metadata !== null) {
            if (! $metadata instanceof \stdClass) {
                throw self::invalid('metadata', 'must be a JSON object; got '.self::typeName($metadata));
            }
            self::metadata($metadata);
        }
        $payload = json_encode($fields['payload'], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION);
        if (strlen($payload) > $maxPayload) {
            throw self::invalid('payload', sprintf('is %d bytes as JSON; the limit is %d', strlen($payload), $maxPayload));
        }

        return [
            'event_id' => $eventId,
            'account_id' => $accountId,
            'aggregate_type' => $aggregateType,
            'aggregate_id' => $aggregateId,
            'event_type' => $eventType,
            'occurred_at' => $occurredAt,
            'payload' => json_decode($payload, true),
            'metadata' => $metadata === null ? null : json_decode(json_encode($metadata), true),
        ];
    }

    /** The PHP value as the JSON value the extension makes of it (objects as stdClass). */
    private static function toJson(mixed $v, string $path, int $depth): mixed
    {
        if ($depth > self::MAX_DEPTH) {
            throw self::invalid($path, 'nests deeper than '.self::MAX_DEPTH.' levels (is it recursive?)');
        }
        if (is_float($v) && ! is_finite($v)) {
            throw self::invalid($path, 'is '.(is_nan($v) ? 'NAN' : ($v > 0 ? 'INF' : '-INF')).'; JSON has no NaN or infinity');
        }
        if (is_string($v)) {
            if (! mb_check_encoding($v, 'UTF-8')) {
                throw self::invalid($path, 'is not valid UTF-8');
            }

            return $v;
        }
        if (is_resource($v) || gettype($v) === 'resource (closed)') {
            throw self::invalid($path, 'is a resource; resources cannot be sent as JSON');
        }
        if ($v instanceof Closure) {
            throw self::invalid($path, 'is a Closure; closures cannot be sent as JSON');
        }
        if ($v instanceof DateTimeInterface) {
            $utc = \DateTimeImmutable::createFromInterface($v)->setTimezone(new \DateTimeZone('UTC'));

            return $utc->format('Y-m-d\TH:i:s.u\Z');
        }
        if ($v instanceof JsonSerializable) {
            return self::toJson($v->jsonSerialize(), $path, $depth + 1);
        }
        if (is_object($v)) {
            $out = new \stdClass();
            foreach (get_object_vars($v) as $k => $item) {
                if ($item === $v) {
                    throw self::invalid(self::join($path, (string) $k), 'refers back to itself (a '.get_class($v).' inside itself)');
                }
                $out->{$k} = self::toJson($item, self::join($path, (string) $k), $depth + 1);
            }

            return $out;
        }
        if (is_array($v)) {
            if (array_is_list($v)) {
                $out = [];
                foreach ($v as $i => $item) {
                    $out[] = self::toJson($item, "{$path}[$i]", $depth + 1);
                }

                return $out;
            }
            $out = new \stdClass();
            foreach ($v as $k => $item) {
                $out->{$k} = self::toJson($item, self::join($path, (string) $k), $depth + 1);
            }

            return $out;
        }

        return $v;
    }

    private static function join(string $path, string $key): string
    {
        return $path === '' ? $key : "$path.$key";
    }

    private static function required(array $fields, string $name): mixed
    {
        if (! array_key_exists($name, $fields)) {
            throw self::invalid($name, 'is missing');
        }

        return $fields[$name];
    }

    private static function typeName(mixed $v): string
    {
        return match (true) {
            $v === null => 'null',
            is_bool($v) => 'a boolean',
            is_float($v) => 'a fractional number',
            is_int($v) => 'an integer',
            is_string($v) => 'a string',
            is_array($v) => 'an array',
            default => 'an object',
        };
    }

    private static function string(mixed $v, string $field): string
    {
        if (! is_string($v)) {
            throw self::invalid($field, 'must be a string; got '.self::typeName($v));
        }

        return $v;
    }

    private static function eventId(mixed $v): string
    {
        $s = self::string($v, 'event_id');
        if (! preg_match('/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/', $s)) {
            throw self::invalid('event_id', json_encode(self::truncate($s), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES).' is not a UUID in the 8-4-4-4-12 hex form');
        }
        $lower = strtolower($s);
        if ($lower === '00000000-0000-0000-0000-000000000000' || $lower === 'ffffffff-ffff-ffff-ffff-ffffffffffff') {
            throw self::invalid('event_id', "$lower is reserved; use a UUID v7");
        }

        return $lower;
    }

    private static function accountId(mixed $v): int
    {
        if (is_int($v)) {
            if ($v <= 0) {
                throw self::invalid('account_id', self::ACCOUNT_ID_RANGE."; got $v");
            }

            return $v;
        }
        if (is_float($v)) {
            throw self::invalid('account_id', self::ACCOUNT_ID_RANGE.'; got '.($v >= 1.8e19 && floor($v) === $v ? 'a larger number' : json_encode($v)));
        }
        throw self::invalid('account_id', self::ACCOUNT_ID_RANGE.'; got '.self::typeName($v));
    }

    private static function name(string $field, string $value, string $allowed, string $allowedText): string
    {
        $chars = mb_str_split($value);
        if ($chars === []) {
            throw self::invalid($field, 'is empty; it must be 1 to 128 characters');
        }
        foreach ($chars as $i => $c) {
            if (! preg_match($allowed, $c)) {
                throw self::invalid($field, 'contains '.self::describe($c).' at character '.($i + 1)."; allowed are $allowedText");
            }
        }
        if (count($chars) > 128) {
            throw self::invalid($field, 'is '.count($chars).' characters; the limit is 128');
        }

        return $value;
    }

    /** C0/C1 controls, line and paragraph separators, bidirectional marks and overrides, the BOM. */
    private static function unprintable(int $cp): bool
    {
        return $cp < 0x20 || ($cp >= 0x7F && $cp <= 0x9F)
            || in_array($cp, [0x2028, 0x2029, 0x200E, 0x200F, 0xFEFF], true)
            || ($cp >= 0x202A && $cp <= 0x202E) || ($cp >= 0x2066 && $cp <= 0x2069);
    }

    private static function describe(string $c): string
    {
        $cp = mb_ord($c, 'UTF-8');
        if (self::unprintable($cp) || preg_match('/^\s$/u', $c) || $cp === 0x85 || $cp === 0xA0) {
            return sprintf('U+%04X', $cp);
        }

        return sprintf("'%s' (U+%04X)", $c, $cp);
    }

    private static function aggregateId(string $value): string
    {
        if ($value === '') {
            throw self::invalid('aggregate_id', 'is empty; it must be 1 to 191 bytes');
        }
        if (strlen($value) > 191) {
            throw self::invalid('aggregate_id', 'is '.strlen($value).' bytes; the limit is 191');
        }
        $byte = 0;
        foreach (mb_str_split($value) as $c) {
            if (self::unprintable(mb_ord($c, 'UTF-8'))) {
                throw self::invalid('aggregate_id', 'contains unprintable character '.self::describe($c)." at byte $byte");
            }
            $byte += strlen($c);
        }
        if (preg_replace('/^\s+|\s+$/u', '', $value) !== $value) {
            throw self::invalid('aggregate_id', 'has leading or trailing whitespace');
        }

        return $value;
    }

    private static function occurredAt(mixed $v): string
    {
        $s = self::string($v, 'occurred_at');
        $bad = fn (string $why) => self::invalid('occurred_at', json_encode(self::truncate($s), JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES)
            ." $why; expected RFC 3339 UTC like 2026-11-26T15:24:00.123456Z");
        if (str_ends_with($s, 'Z') || str_ends_with($s, 'z')) {
            $body = substr($s, 0, -1);
        } elseif (str_ends_with($s, '+00:00')) {
            $body = substr($s, 0, -6);
        } else {
            throw $bad('is not UTC (it must end in Z or +00:00)');
        }
        if (str_contains($body, '.') && strlen(explode('.', $body, 2)[1]) > 6) {
            throw $bad('has more than 6 fractional digits (the precision is microseconds)');
        }
        // Component by component, as the SDK's RFC 3339 parser reports it.
        $m = [$body];
        $at = 0;
        foreach ([['year', 4, '-'], ['month', 2, '-'], ['day', 2, 'T'], ['hour', 2, ':'], ['minute', 2, ':'], ['second', 2, null]] as [$component, $digits, $literal]) {
            $part = substr($body, $at, $digits);
            if (strlen($part) !== $digits || ! ctype_digit($part)) {
                throw $bad("is not a valid timestamp (the '$component' component could not be parsed)");
            }
            $m[] = $part;
            $at += $digits;
            if ($literal !== null) {
                if (strcasecmp(substr($body, $at, 1), $literal) !== 0) {
                    throw $bad('is not a valid timestamp (a character literal was not valid)');
                }
                $at++;
            }
        }
        $fraction = substr($body, $at);
        if ($fraction !== '' && ! preg_match('/^\.\d{1,6}$/', $fraction)) {
            throw $bad("is not a valid timestamp (the 'subsecond' component could not be parsed)");
        }
        $m[] = $fraction;
        foreach ([['month', 2, 1, 12], ['day', 3, 1, 31], ['hour', 4, 0, 23], ['minute', 5, 0, 59], ['second', 6, 0, 60]] as [$component, $i, $min, $max]) {
            if ((int) $m[$i] < $min || (int) $m[$i] > $max) {
                throw $bad("is not a valid timestamp (the '$component' component is out of range)");
            }
        }
        if (! checkdate((int) $m[2], (int) $m[3], (int) $m[1])) {
            throw $bad("is not a valid timestamp (the 'day' component is out of range)");
        }
        if ((int) $m[1] < 1000) {
            throw self::invalid('occurred_at', 'is in year '.(int) $m[1].'; it must be between 1000 and 9999');
        }

        return sprintf('%s-%s-%sT%s:%s:%s.%06dZ', $m[1], $m[2], $m[3], $m[4], $m[5], $m[6], (int) str_pad(substr($m[7] === '' ? '.0' : $m[7], 1), 6, '0'));
    }

    private static function metadata(\stdClass $m): void
    {
        foreach (self::METADATA_STRING_KEYS as $key) {
            $v = $m->{$key} ?? null;
            if ($v === null) {
                continue;
            }
            if (! is_string($v)) {
                throw self::invalid("metadata.$key", 'must be a string; got '.self::typeName($v));
            }
            if (strlen($v) > 255) {
                throw self::invalid("metadata.$key", 'is '.strlen($v).' bytes; the limit is 255');
            }
        }
        $size = strlen(json_encode($m, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE));
        if ($size > 65536) {
            throw self::invalid('metadata', "is $size bytes as JSON; the limit is 65536");
        }
    }

    private static function truncate(string $s): string
    {
        return mb_strlen($s) <= 64 ? $s : mb_substr($s, 0, 64).'…';
    }

    private static function uuidV7(): string
    {
        $ms = (int) (microtime(true) * 1000);
        $bytes = pack('J', $ms << 16);
        $bytes = substr($bytes, 2, 6).random_bytes(10);
        $bytes[6] = chr((ord($bytes[6]) & 0x0F) | 0x70);
        $bytes[8] = chr((ord($bytes[8]) & 0x3F) | 0x80);
        $hex = bin2hex($bytes);

        return sprintf('%s-%s-%s-%s-%s', substr($hex, 0, 8), substr($hex, 8, 4), substr($hex, 12, 4), substr($hex, 16, 4), substr($hex, 20));
    }

    private static function invalid(string $field, string $problem): ValidationException
    {
        return new ValidationException($field === '' ? $problem : "$field $problem");
    }

    /** Without the extension, its exception classes are declared here, under its names. */
    private static function ensureExceptionClass(): void
    {
        if (! class_exists(ValidationException::class, false)) {
            require_once __DIR__.'/extension_exceptions.php';
        }
    }
}
