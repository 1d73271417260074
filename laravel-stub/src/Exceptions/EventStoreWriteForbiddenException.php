<?php

namespace SuiteX\EventBackbone\Exceptions;

use LogicException;

/**
 * Thrown, before any SQL is sent, when the `event_store` connection is asked for a statement
 * its role does not allow (DB_EVENT_STORE_ROLE; see SuiteX\EventBackbone\Database\EventStoreConnection): the web
 * tier (role reader) never writes — it emits through the suitex_events extension
 * (`Events::emitEvent([...])`) and the worker (role writer) stores what it emits; nobody updates or
 * deletes a stored event.
 */
class EventStoreWriteForbiddenException extends LogicException
{
    public static function forRole(string $role, string $verb): self
    {
        $why = $role === 'writer'
            ? 'the writer only appends (plain INSERT): the event store is append-only'
            : 'the reader only reads. Emit the event with Events::emitEvent([...]) instead; the worker (role writer) stores it';

        return new self(sprintf(
            'The event_store connection has the %s role (DB_EVENT_STORE_ROLE): %s is not allowed; %s.',
            $role,
            $verb,
            $why
        ));
    }
}
