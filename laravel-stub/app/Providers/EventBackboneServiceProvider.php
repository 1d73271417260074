<?php

namespace App\Providers;

use App\Services\EventBackbone;
use Illuminate\Support\ServiceProvider;

/** Binds the event backbone emitter behind the Events facade. */
class EventBackboneServiceProvider extends ServiceProvider
{
    public function register()
    {
        $this->app->singleton(EventBackbone::class);
        $this->app->alias(EventBackbone::class, 'suitex.events');
    }
}
