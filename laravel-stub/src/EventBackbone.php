<?php

namespace SuiteX\EventBackbone;

use SuiteX\EventBackbone\Exceptions\EventBackboneUnavailableException;

/**
 * Emits events through the suitex_events extension (behind the Events facade).
 *
 * The extension validates the envelope, offloads large payloads to the claim-check bucket and
 * publishes to events.raw; its exceptions (SuiteX\Events\ValidationException, …) pass through
 * unchanged, naming the field and the limit.
 */
class EventBackbone
{
    /** Whether the extension is loaded. */
    public function available(): bool
    {
        return function_exists('SuiteX\Events\emit_event');
    }

    /**
     * Emits one event: ['account_id' => 42, 'aggregate_type' => 'customer', 'aggregate_id' =>
     * 'C-1001', 'event_type' => 'customer.updated', 'payload' => [...]] (event_id, occurred_at
     * and metadata optional). Returns ['event_id' => …, 'message_id' => …, 'payload_location' =>
     * 'inline'|'gcs', 'spooled' => bool]: in spool mode (php.ini suitex_events.spool) the event
     * is appended durably to the host's spool, `spooled` is true and `message_id` is empty.
     * `$options`: ['traceparent' => …, 'tracestate' => …], the W3C trace context the event
     * continues; under php-fpm the extension reads the request's `traceparent` header itself.
     */
    public function emitEvent(array $event, array $options = []): array
    {
        $this->requireExtension();

        return \SuiteX\Events\emit_event($event, $options);
    }

    /** Emits several events at once; returns one receipt per event, in order. */
    public function emitEvents(array $events, array $options = []): array
    {
        $this->requireExtension();

        return \SuiteX\Events\emit_events($events, $options);
    }

    /** @deprecated 0.2 name: use emitEvent(), the operation's name in every language. */
    public function emit(array $event): array
    {
        return $this->emitEvent($event);
    }

    /** @deprecated 0.2 name: use emitEvents(), the operation's name in every language. */
    public function emitBatch(array $events): array
    {
        return $this->emitEvents($events);
    }

    private function requireExtension(): void
    {
        if (! $this->available()) {
            throw EventBackboneUnavailableException::extensionMissing();
        }
    }
}
