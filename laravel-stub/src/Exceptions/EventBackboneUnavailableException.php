<?php

namespace SuiteX\EventBackbone\Exceptions;

use RuntimeException;

/** Thrown by Events::emitEvent() when the suitex_events PHP extension is not loaded. */
class EventBackboneUnavailableException extends RuntimeException
{
    public static function extensionMissing(): self
    {
        return new self(
            'The suitex_events PHP extension is not loaded in this PHP ('.PHP_SAPI.', '.PHP_VERSION.'), so events cannot be emitted. '
            .'Install suitex_events.so and add "extension=suitex_events" to php.ini (see php-ext/README.md); '
            .'`php -m` lists it once it is loaded.'
        );
    }
}
