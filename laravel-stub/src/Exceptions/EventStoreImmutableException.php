<?php

namespace SuiteX\EventBackbone\Exceptions;

use LogicException;

/**
 * Thrown when code tries to change or remove a stored event. The event store is append-only:
 * an event, once stored, is never updated or deleted (the database refuses it too).
 */
class EventStoreImmutableException extends LogicException
{
    public static function refuse(string $operation): self
    {
        return new self(
            "event_store is append-only: {$operation} is not allowed. "
            .'Stored events are never changed or removed; emit a new event that supersedes it instead.'
        );
    }
}
