<?php

namespace App\Providers;

use App\Database\EventStoreConnection;
use App\Services\EventBackbone;
use Illuminate\Support\ServiceProvider;

/**
 * Binds the event backbone emitter behind the Events facade, and makes the `event_store`
 * connection an EventStoreConnection: what it may send is decided by its role
 * (DB_EVENT_STORE_ROLE: reader by default, writer for the worker, migrator for migrations).
 */
class EventBackboneServiceProvider extends ServiceProvider
{
    public function register()
    {
        $this->app->singleton(EventBackbone::class);
        $this->app->alias(EventBackbone::class, 'suitex.events');

        $this->app->resolving('db', function ($db, $app) {
            $db->extend('event_store', function (array $config, string $name) use ($app) {
                // The framework builds the connection (lazy PDO, read/write split, TLS options);
                // the role-checking class takes over its PDO resolvers.
                $base = $app['db.factory']->make($config, $name);
                // Its parsed configuration, which carries the connection's `name`: Eloquent
                // routes a model's save through the connection of that name.
                $connection = new EventStoreConnection($base->getRawPdo(), $base->getDatabaseName(), $base->getTablePrefix(), $base->getConfig());
                $connection->setReadPdo($base->getRawReadPdo());

                return $connection;
            });
        });
    }
}
