<?php

namespace SuiteX\EventBackbone;

use Illuminate\Support\ServiceProvider;
use SuiteX\EventBackbone\Database\EventStoreConnection;

/**
 * The package's service provider, found by Laravel's package auto-discovery
 * (composer.json `extra.laravel`): merges and publishes `config/suitex-events.php`, registers
 * the event store migration, binds the emitter behind the `Events` facade, registers
 * `php artisan events:work` (the PHP worker), and makes the
 * `event_store` connection an EventStoreConnection — what it may send is decided by its role
 * (DB_EVENT_STORE_ROLE: reader by default, writer for the worker, migrator for migrations).
 */
class EventBackboneServiceProvider extends ServiceProvider
{
    public function register()
    {
        $this->mergeConfigFrom(__DIR__.'/../config/suitex-events.php', 'suitex-events');

        $this->app->singleton(EventBackbone::class);
        $this->app->alias(EventBackbone::class, 'suitex.events');

        $this->app->resolving('db', function ($db, $app) {
            $db->extend($app['config']->get('suitex-events.connection', 'event_store'), function (array $config, string $name) use ($app) {
                // The password file, when there is one, is read for every new connection (a
                // rotated secret needs no restart; events:work purges after 1045).
                if (! empty($config['password_file'])) {
                    $password = @file_get_contents($config['password_file']);
                    if ($password === false) {
                        throw new \RuntimeException("DB_EVENT_STORE_PASSWORD_FILE {$config['password_file']} cannot be read");
                    }
                    $config['password'] = rtrim($password, "\r\n");
                }
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

    public function boot()
    {
        if ($this->app['config']->get('suitex-events.migrations', true)) {
            $this->loadMigrationsFrom(__DIR__.'/../database/migrations');
        }
        if ($this->app->runningInConsole()) {
            $this->commands([Console\WorkCommand::class, Console\VerifyCommand::class, Console\ParkedCommand::class]);
            $this->publishes([__DIR__.'/../config/suitex-events.php' => $this->app->configPath('suitex-events.php')], 'suitex-events-config');
            $this->publishes([__DIR__.'/../database/migrations' => $this->app->databasePath('migrations')], 'suitex-events-migrations');
        }
    }
}
