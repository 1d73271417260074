<?php

namespace SuiteX\EventBackbone\Casts;

/**
 * A JSON document's exact text, to be written to a JSON column as it is.
 *
 * A PHP array cannot tell `{}` from `[]`, nor keep a large integer or a float's exact digits, so
 * a payload decoded into an array and encoded again is not always the payload that was emitted.
 * The worker writes the text the event arrived with (see JsonDocument).
 */
final class JsonText implements \Stringable
{
    public function __construct(public readonly string $json)
    {
    }

    public function __toString(): string
    {
        return $this->json;
    }
}
