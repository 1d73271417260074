<?php

namespace SuiteX\EventBackbone\Facades;

use SuiteX\EventBackbone\Testing\EventBackboneFake;
use Illuminate\Support\Facades\Facade;

/**
 * Events::emitEvent([...]) — emit an event to the SuiteX event backbone; Events::emitEvents([...])
 * for several. (emit() and emitBatch(), the 0.2 names, remain as deprecated aliases.)
 *
 * @method static array emitEvent(array $event, array $options = []) $options: traceparent, tracestate
 * @method static array emitEvents(array $events, array $options = [])
 * @method static array emit(array $event) deprecated: use emitEvent()
 * @method static array emitBatch(array $events) deprecated: use emitEvents()
 * @method static bool available()
 * @method static \Illuminate\Support\Collection emitted(?string $eventType = null, ?callable $callback = null)
 * @method static void assertEmitted(string $eventType, ?callable $callback = null)
 * @method static void assertEmittedTimes(string $eventType, int $times = 1)
 * @method static void assertNotEmitted(string $eventType, ?callable $callback = null)
 * @method static void assertNothingEmitted()
 *
 * @see \SuiteX\EventBackbone\EventBackbone
 * @see \SuiteX\EventBackbone\Testing\EventBackboneFake
 */
class Events extends Facade
{
    /**
     * Records events instead of emitting them (validated exactly as the extension validates
     * them), for application tests; works without the extension loaded.
     */
    public static function fake(): EventBackboneFake
    {
        static::swap($fake = new EventBackboneFake());

        return $fake;
    }

    protected static function getFacadeAccessor()
    {
        return 'suitex.events';
    }
}
