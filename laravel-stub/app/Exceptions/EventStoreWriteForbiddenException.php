<?php

namespace App\Exceptions;

use LogicException;

/**
 * Thrown when the web tier tries to write the event store. Only console processes (queue
 * workers, artisan) may insert; web requests emit through the suitex_events extension
 * (`Events::emit([...])`) and the worker stores what they emit.
 */
class EventStoreWriteForbiddenException extends LogicException
{
    public static function outsideConsole(): self
    {
        return new self(
            'EventStore may only be written by a console process (queue worker or artisan command); '
            .'this is a web request. Emit the event with Events::emit([...]) instead.'
        );
    }
}
