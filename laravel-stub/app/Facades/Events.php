<?php

namespace App\Facades;

use Illuminate\Support\Facades\Facade;

/**
 * Events::emit([...]) — emit an event to the SuiteX event backbone.
 *
 * @method static array emit(array $event)
 * @method static array emitBatch(array $events)
 * @method static bool available()
 *
 * @see \App\Services\EventBackbone
 */
class Events extends Facade
{
    protected static function getFacadeAccessor()
    {
        return 'suitex.events';
    }
}
