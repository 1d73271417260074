<?php

// The prose of the stub file, by symbol. generate.php takes signatures from the extension
// itself and these docs from here; a symbol missing here is still stubbed, without docs.

return [
    'file' => <<<'DOC'
IDE and static-analysis stubs for the suitex_events extension (never loaded at run time).
Generated from the extension by php-ext/stubs/generate.php; a test fails when they differ.

Event arrays: account_id (int > 0), aggregate_type, aggregate_id, event_type (strings),
payload (any JSON-encodable value) or payload_json (a JSON document as a string), and
optionally event_id (UUID), occurred_at (RFC 3339 UTC string or DateTimeInterface),
metadata (array/object of JSON values).

Settings, in order of precedence: constructor options (by environment-variable name), php.ini
directives, the environment. The directives are PHP_INI_SYSTEM (php.ini or the pool's
php_admin_value; ini_set() cannot change them at run time):
DOC,
    'emit_event' => <<<'DOC'
Emits one event through this process's emitter (configured from php.ini and the environment).

@param array<string, mixed> $event
@param array{traceparent?: string, tracestate?: string}|null $options the W3C trace context the event continues; without it, under php-fpm, the request's traceparent header (docs/architecture.md §2.8)
@return array{event_id: string, message_id: string, payload_location: 'inline'|'gcs', spooled: bool} (spool mode: spooled true, message_id '')
@throws ValidationException the event broke a rule (the message names the field and the limit); nothing was sent
@throws ConfigurationException a setting is missing or invalid
@throws PublishException uploading or publishing failed or timed out (emitting the same event again is safe); in spool mode, the spool is full (the message names SUITEX_EVENTS_SPOOL_MAX_BYTES) or cannot be written
DOC,
    'emit_events' => <<<'DOC'
Emits several events, in order per aggregate. Every event is validated first: one invalid
event throws and nothing is sent. A receipt per event, in order; a failed event has
message_id null and error set, and later events of its aggregate are not sent.

@param list<array<string, mixed>> $events
@param array{traceparent?: string, tracestate?: string}|null $options as for emit_event(), for every event of the call
@return list<array{event_id: string, message_id: ?string, payload_location: ?string, spooled: bool, error: ?string}>
@throws ValidationException
@throws ConfigurationException
DOC,
    'Exception' => 'Base of every exception the extension throws.',
    'ValidationException' => 'The event, or a value in it, broke a rule; nothing was sent.',
    'ConfigurationException' => 'A setting (option, php.ini directive or environment variable) is missing or invalid.',
    'PublishException' => 'Uploading or publishing failed or timed out (emitting the same event again is safe); in spool mode, the spool is full or cannot be written (nothing was spooled).',
    'ConsumeException' => 'Pulling or settling through Inbox failed (Pub/Sub or the claim-check bucket unreachable); nothing was lost, the deliveries come again.',
    'Emitter' => 'An emitter with its own settings (emit_event() uses the process-wide one).',
    'Emitter::__construct' => <<<'DOC'
@param array<string, string|int>|null $options settings by environment-variable name, e.g.
       ['SUITEX_EVENTS_RAW_TOPIC' => 'events.raw', 'SUITEX_EVENTS_PUBLISH_DEADLINE' => '5s']
@throws ConfigurationException
DOC,
    'Emitter::emitEvent' => <<<'DOC'
Emits one event (as emit_event()).

@param array<string, mixed> $event
@param array{traceparent?: string, tracestate?: string}|null $options as for emit_event()
@return array{event_id: string, message_id: string, payload_location: 'inline'|'gcs', spooled: bool} (spool mode: spooled true, message_id '')
@throws ValidationException|PublishException
DOC,
    'Emitter::emitEvents' => <<<'DOC'
Emits several events (as emit_events()).

@param list<array<string, mixed>> $events
@param array{traceparent?: string, tracestate?: string}|null $options as for emit_event()
@return list<array{event_id: string, message_id: ?string, payload_location: ?string, spooled: bool, error: ?string}>
@throws ValidationException
DOC,
    'Emitter::emit' => <<<'DOC'
@deprecated use emitEvent()
@param array<string, mixed> $event
@return array{event_id: string, message_id: string, payload_location: 'inline'|'gcs', spooled: bool} (spool mode: spooled true, message_id '')
@throws ValidationException|PublishException
DOC,
    'Emitter::emitBatch' => <<<'DOC'
@deprecated use emitEvents()
@param list<array<string, mixed>> $events
@return list<array{event_id: string, message_id: ?string, payload_location: ?string, spooled: bool, error: ?string}>
@throws ValidationException
DOC,
    'Inbox' => <<<'DOC'
Pulls events.raw-sub for CLI workers that store events themselves. Exists under the CLI SAPI
only: web SAPIs emit, they never consume.
DOC,
    'Inbox::__construct' => <<<'DOC'
@param array<string, string|int>|null $options as for Emitter, plus SUITEX_EVENTS_RAW_SUBSCRIPTION
@throws ConfigurationException
DOC,
    'Inbox::pull' => <<<'DOC'
Up to $max deliveries (1–1000, default 100), waiting up to $waitMs milliseconds (default 2000)
for the first.

@return list<array{ack_id: string, message_id: string, delivery_attempt: int, ordering_key: string, attributes: array<string, string>, data_sha256: string, event_id: ?string, event: ?array<string, mixed>, event_json: ?string, payload_json: ?string, metadata_json: ?string, error: ?string}>
@throws ConsumeException Pub/Sub or the claim-check bucket could not be reached
DOC,
    'Inbox::ack' => 'Acknowledges a delivery: it is consumed.',
    'Inbox::nack' => 'Releases a delivery for redelivery (dead-lettered after the subscription\'s maximum delivery attempts).',
    'Inbox::ackStored' => <<<'DOC'
Settles a delivery whose event is committed to the event store as row $storeId (or found
stored already as the same event): acks it. The row reaches events.merged from the ledger
(the worker's feeder), not from here. On failure the delivery stays leased, its lease kept
alive, and the call can be repeated.

@throws ValidationException $ackId is not a leased delivery, or $storeId is not positive
@throws ConsumeException Pub/Sub could not be reached
DOC,
    'Inbox::decodeEvent' => <<<'DOC'
An event's wire text (a delivery's event_json, or an event a parked key kept aside) decoded into
a delivery's event fields.

@return array{event: array<string, mixed>, event_json: string, payload_json: string, metadata_json: ?string}
@throws ValidationException the text is not a valid event (the message names the field)
DOC,
    'Inbox::leased' => 'How many deliveries are leased: pulled, not yet settled (their leases are kept alive).',
    'Inbox::inHand' => '@deprecated the 0.2 name of leased(); use leased().',
    'Consumer' => '@deprecated the old name of Inbox; use Inbox.',
];
