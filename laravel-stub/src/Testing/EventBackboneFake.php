<?php

namespace SuiteX\EventBackbone\Testing;

use Illuminate\Support\Collection;
use PHPUnit\Framework\Assert as PHPUnit;

/**
 * What Events::fake() swaps in: records events instead of emitting them, after validating each
 * exactly as the extension does (EventValidator), and asserts on what was recorded — in the
 * style of Laravel's own fakes. Works whether or not the extension is loaded.
 */
class EventBackboneFake
{
    /** @var list<array> the events, as the extension would have sent them */
    private array $emitted = [];

    public function available(): bool
    {
        return true;
    }

    /** Validates and records one event; returns a receipt shaped like the extension's. */
    public function emitEvent(array $event, array $options = []): array
    {
        $valid = EventValidator::validate($event);
        $this->emitted[] = $valid;

        return ['event_id' => $valid['event_id'], 'message_id' => 'fake-'.count($this->emitted), 'payload_location' => 'inline', 'spooled' => false];
    }

    /** Validates every event first (the extension sends nothing when one is bad), then records them. */
    public function emitEvents(array $events, array $options = []): array
    {
        $valid = array_map(fn (array $e) => EventValidator::validate($e), $events);
        $receipts = [];
        foreach ($valid as $event) {
            $this->emitted[] = $event;
            $receipts[] = ['event_id' => $event['event_id'], 'message_id' => 'fake-'.count($this->emitted), 'payload_location' => 'inline', 'spooled' => false, 'error' => null];
        }

        return $receipts;
    }

    /** @deprecated 0.2 name: use emitEvent(). */
    public function emit(array $event): array
    {
        return $this->emitEvent($event);
    }

    /** @deprecated 0.2 name: use emitEvents(). */
    public function emitBatch(array $events): array
    {
        return $this->emitEvents($events);
    }

    /** The recorded events of `$eventType` (every event when null) for which `$callback` is true. */
    public function emitted(?string $eventType = null, ?callable $callback = null): Collection
    {
        return collect($this->emitted)
            ->filter(fn (array $e) => $eventType === null || $e['event_type'] === $eventType)
            ->filter(fn (array $e) => $callback === null || $callback($e))
            ->values();
    }

    /** At least one `$eventType` event was emitted (for which `$callback`, given the event array, is true). */
    public function assertEmitted(string $eventType, ?callable $callback = null): void
    {
        PHPUnit::assertTrue(
            $this->emitted($eventType, $callback)->isNotEmpty(),
            "The expected [$eventType] event was not emitted.".$this->summary()
        );
    }

    /** Exactly `$times` `$eventType` events were emitted. */
    public function assertEmittedTimes(string $eventType, int $times = 1): void
    {
        $count = $this->emitted($eventType)->count();
        PHPUnit::assertSame($times, $count, "The expected [$eventType] event was emitted $count times instead of $times times.");
    }

    /** No `$eventType` event (for which `$callback` is true) was emitted. */
    public function assertNotEmitted(string $eventType, ?callable $callback = null): void
    {
        PHPUnit::assertTrue(
            $this->emitted($eventType, $callback)->isEmpty(),
            "The unexpected [$eventType] event was emitted."
        );
    }

    /** Nothing was emitted. */
    public function assertNothingEmitted(): void
    {
        PHPUnit::assertEmpty($this->emitted, 'Events were emitted unexpectedly.'.$this->summary());
    }

    private function summary(): string
    {
        if ($this->emitted === []) {
            return ' Nothing was emitted.';
        }

        return ' Emitted: '.implode(', ', array_map(fn (array $e) => $e['event_type'], $this->emitted)).'.';
    }
}
