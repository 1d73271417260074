<?php

/**
 * IDE and static-analysis stubs for the suitex_events extension (never loaded at run time).
 * Generated from the extension by php-ext/stubs/generate.php; a test fails when they differ.
 *
 * Event arrays: account_id (int > 0), aggregate_type, aggregate_id, event_type (strings),
 * payload (any JSON-encodable value) or payload_json (a JSON document as a string), and
 * optionally event_id (UUID), occurred_at (RFC 3339 UTC string or DateTimeInterface),
 * metadata (array/object of JSON values).
 *
 * Settings, in order of precedence: constructor options (by environment-variable name), php.ini
 * directives, the environment. The directives are PHP_INI_SYSTEM (php.ini or the pool's
 * php_admin_value; ini_set() cannot change them at run time):
 *   suitex_events.project
 *   suitex_events.google_cloud_project
 *   suitex_events.raw_topic
 *   suitex_events.merged_topic
 *   suitex_events.dlq_topic
 *   suitex_events.raw_subscription
 *   suitex_events.dlq_subscription
 *   suitex_events.payload_bucket
 *   suitex_events.offload_threshold
 *   suitex_events.max_payload
 *   suitex_events.publish_deadline
 *   suitex_events.batch_max_messages
 *   suitex_events.batch_max_bytes
 *   suitex_events.batch_max_delay
 *   suitex_events.max_ordering_keys
 *   suitex_events.spool
 *   suitex_events.spool_group
 *   suitex_events.spool_max_bytes
 *   suitex_events.pubsub_emulator_host
 *   suitex_events.storage_emulator_host
 */

namespace SuiteX\Events;

/**
 * Emits one event through this process's emitter (configured from php.ini and the environment).
 *
 * @param array<string, mixed> $event
 * @param array{traceparent?: string, tracestate?: string}|null $options the W3C trace context the event continues; without it, under php-fpm, the request's traceparent header (docs/architecture.md §2.8)
 * @return array{event_id: string, message_id: string, payload_location: 'inline'|'gcs', spooled: bool} (spool mode: spooled true, message_id '')
 * @throws ValidationException the event broke a rule (the message names the field and the limit); nothing was sent
 * @throws ConfigurationException a setting is missing or invalid
 * @throws PublishException uploading or publishing failed or timed out (emitting the same event again is safe); in spool mode, the spool is full (the message names SUITEX_EVENTS_SPOOL_MAX_BYTES) or cannot be written
 */
function emit_event(array $event, ?array $options = null): array
{
}

/**
 * Emits several events, in order per aggregate. Every event is validated first: one invalid
 * event throws and nothing is sent. A receipt per event, in order; a failed event has
 * message_id null and error set, and later events of its aggregate are not sent.
 *
 * @param list<array<string, mixed>> $events
 * @param array{traceparent?: string, tracestate?: string}|null $options as for emit_event(), for every event of the call
 * @return list<array{event_id: string, message_id: ?string, payload_location: ?string, spooled: bool, error: ?string}>
 * @throws ValidationException
 * @throws ConfigurationException
 */
function emit_events(array $events, ?array $options = null): array
{
}

/**
 * Base of every exception the extension throws.
 */
class Exception extends \Exception
{
}

/**
 * The event, or a value in it, broke a rule; nothing was sent.
 */
class ValidationException extends Exception
{
}

/**
 * A setting (option, php.ini directive or environment variable) is missing or invalid.
 */
class ConfigurationException extends Exception
{
}

/**
 * Uploading or publishing failed or timed out (emitting the same event again is safe); in spool mode, the spool is full or cannot be written (nothing was spooled).
 */
class PublishException extends Exception
{
}

/**
 * Pulling or settling through Inbox failed (Pub/Sub or the claim-check bucket unreachable); nothing was lost, the deliveries come again.
 */
class ConsumeException extends Exception
{
}

/**
 * An emitter with its own settings (emit_event() uses the process-wide one).
 */
class Emitter
{
    /**
     * @param array<string, string|int>|null $options settings by environment-variable name, e.g.
     *        ['SUITEX_EVENTS_RAW_TOPIC' => 'events.raw', 'SUITEX_EVENTS_PUBLISH_DEADLINE' => '5s']
     * @throws ConfigurationException
     */
    public function __construct(?array $options = null)
    {
    }

    /**
     * Emits one event (as emit_event()).
     *
     * @param array<string, mixed> $event
     * @param array{traceparent?: string, tracestate?: string}|null $options as for emit_event()
     * @return array{event_id: string, message_id: string, payload_location: 'inline'|'gcs', spooled: bool} (spool mode: spooled true, message_id '')
     * @throws ValidationException|PublishException
     */
    public function emitEvent(array $event, ?array $options = null): array
    {
    }

    /**
     * Emits several events (as emit_events()).
     *
     * @param list<array<string, mixed>> $events
     * @param array{traceparent?: string, tracestate?: string}|null $options as for emit_event()
     * @return list<array{event_id: string, message_id: ?string, payload_location: ?string, spooled: bool, error: ?string}>
     * @throws ValidationException
     */
    public function emitEvents(array $events, ?array $options = null): array
    {
    }

    /**
     * @deprecated use emitEvent()
     * @param array<string, mixed> $event
     * @return array{event_id: string, message_id: string, payload_location: 'inline'|'gcs', spooled: bool} (spool mode: spooled true, message_id '')
     * @throws ValidationException|PublishException
     */
    public function emit(array $event): array
    {
    }

    /**
     * @deprecated use emitEvents()
     * @param list<array<string, mixed>> $events
     * @return list<array{event_id: string, message_id: ?string, payload_location: ?string, spooled: bool, error: ?string}>
     * @throws ValidationException
     */
    public function emitBatch(array $events): array
    {
    }
}

/**
 * Pulls events.raw-sub for CLI workers that store events themselves. Exists under the CLI SAPI
 * only: web SAPIs emit, they never consume.
 */
class Inbox
{
    /**
     * @param array<string, string|int>|null $options as for Emitter, plus SUITEX_EVENTS_RAW_SUBSCRIPTION
     * @throws ConfigurationException
     */
    public function __construct(?array $options = null)
    {
    }

    /**
     * Up to $max deliveries (1–1000, default 100), waiting up to $waitMs milliseconds (default 2000)
     * for the first.
     *
     * @return list<array{ack_id: string, message_id: string, delivery_attempt: int, ordering_key: string, attributes: array<string, string>, data_sha256: string, event_id: ?string, event: ?array<string, mixed>, event_json: ?string, payload_json: ?string, metadata_json: ?string, error: ?string}>
     * @throws ConsumeException Pub/Sub or the claim-check bucket could not be reached
     */
    public function pull(?int $max = null, ?int $waitMs = null): array
    {
    }

    /**
     * Acknowledges a delivery: it is consumed.
     */
    public function ack(string $ackId): void
    {
    }

    /**
     * Releases a delivery for redelivery (dead-lettered after the subscription's maximum delivery attempts).
     */
    public function nack(string $ackId): void
    {
    }

    /**
     * Settles a delivery whose event is committed to the event store as row $storeId (or found
     * stored already as the same event): acks it. The row reaches events.merged from the ledger
     * (the worker's feeder), not from here. On failure the delivery stays leased, its lease kept
     * alive, and the call can be repeated.
     *
     * @throws ValidationException $ackId is not a leased delivery, or $storeId is not positive
     * @throws ConsumeException Pub/Sub could not be reached
     */
    public function ackStored(string $ackId, int $storeId): void
    {
    }

    public function appendSpan(string $ackId): AppendSpan
    {
    }

    /**
     * An event's wire text (a delivery's event_json, or an event a parked key kept aside) decoded into
     * a delivery's event fields.
     *
     * @return array{event: array<string, mixed>, event_json: string, payload_json: string, metadata_json: ?string}
     * @throws ValidationException the text is not a valid event (the message names the field)
     */
    public static function decodeEvent(string $eventJson): array
    {
    }

    /**
     * How many deliveries are leased: pulled, not yet settled (their leases are kept alive).
     */
    public function leased(): int
    {
    }

    /**
     * @deprecated the 0.2 name of leased(); use leased().
     */
    public function inHand(): int
    {
    }
}

class AppendSpan
{
    public function __construct()
    {
    }

    public function end(?string $error = null): void
    {
    }

    public function isRecorded(): bool
    {
    }
}

/**
 * @deprecated the old name of Inbox; use Inbox.
 */
class Consumer
{
    public function __construct(?array $options = null)
    {
    }

    public function pull(?int $max = null, ?int $waitMs = null): array
    {
    }

    public function ack(string $ackId): void
    {
    }

    public function nack(string $ackId): void
    {
    }
}
