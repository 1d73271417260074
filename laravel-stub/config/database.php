<?php

use Illuminate\Support\Str;

/*
|--------------------------------------------------------------------------
| Database connections
|--------------------------------------------------------------------------
|
| `mysql` is SuiteX's primary database, as before. `event_store` is the dedicated event store
| instance: its own host, account and TLS settings, read from the same DB_EVENT_STORE_*
| variables as the suitex-events worker. Nothing connects to it until it is used, so the
| application boots and serves the primary database even while the event store is down.
|
*/

$eventStoreSslMode = strtolower((string) env('DB_EVENT_STORE_SSL_MODE', 'preferred'));

return [

    'default' => env('DB_CONNECTION', 'mysql'),

    'connections' => [

        'mysql' => [
            'driver' => 'mysql',
            'url' => env('DATABASE_URL'),
            'host' => env('DB_HOST', '127.0.0.1'),
            'port' => env('DB_PORT', '3306'),
            'database' => env('DB_DATABASE', 'forge'),
            'username' => env('DB_USERNAME', 'forge'),
            'password' => env('DB_PASSWORD', ''),
            'unix_socket' => env('DB_SOCKET', ''),
            'charset' => 'utf8mb4',
            'collation' => 'utf8mb4_unicode_ci',
            'prefix' => '',
            'prefix_indexes' => true,
            'strict' => true,
            'engine' => null,
            'options' => extension_loaded('pdo_mysql') ? array_filter([
                PDO::MYSQL_ATTR_SSL_CA => env('MYSQL_ATTR_SSL_CA'),
            ]) : [],
        ],

        'event_store' => [
            'driver' => 'mysql',
            'host' => env('DB_EVENT_STORE_HOST', '127.0.0.1'),
            'port' => env('DB_EVENT_STORE_PORT', '3306'),
            'database' => env('DB_EVENT_STORE_DATABASE', 'event_store'),
            'username' => env('DB_EVENT_STORE_USERNAME', 'root'),
            'password' => env('DB_EVENT_STORE_PASSWORD', ''),
            'unix_socket' => env('DB_EVENT_STORE_SOCKET', ''),
            'charset' => 'utf8mb4',
            'collation' => 'utf8mb4_unicode_ci',
            'prefix' => '',
            'prefix_indexes' => true,
            'strict' => true,
            'engine' => 'InnoDB',
            // What this process may do with the event store: reader (default; the web tier),
            // writer (the worker), migrator (migrations). Enforced before any SQL is sent
            // (App\Database\EventStoreConnection) and by the role's database account.
            'role' => env('DB_EVENT_STORE_ROLE', 'reader'),
            // The event store keeps UTC, like the worker's sessions.
            'timezone' => '+00:00',
            'options' => extension_loaded('pdo_mysql') ? array_filter([
                PDO::MYSQL_ATTR_SSL_CA => $eventStoreSslMode === 'disabled' ? null : env('DB_EVENT_STORE_SSL_CA'),
                PDO::MYSQL_ATTR_SSL_CERT => $eventStoreSslMode === 'disabled' ? null : env('DB_EVENT_STORE_SSL_CERT'),
                PDO::MYSQL_ATTR_SSL_KEY => $eventStoreSslMode === 'disabled' ? null : env('DB_EVENT_STORE_SSL_KEY'),
                // verify_identity checks the host name too; verify_ca only the chain.
                PDO::MYSQL_ATTR_SSL_VERIFY_SERVER_CERT => in_array($eventStoreSslMode, ['verify_ca', 'verify_identity'], true) ? true : null,
                // A dead event store must not hang a request or a worker for long.
                PDO::ATTR_TIMEOUT => (int) env('DB_EVENT_STORE_CONNECT_TIMEOUT', 5),
            ], fn ($v) => $v !== null) : [],
        ],

    ],

    'migrations' => 'migrations',

    'redis' => [

        'client' => env('REDIS_CLIENT', 'phpredis'),

        'options' => [
            'cluster' => env('REDIS_CLUSTER', 'redis'),
            'prefix' => env('REDIS_PREFIX', Str::slug(env('APP_NAME', 'laravel'), '_').'_database_'),
        ],

        'default' => [
            'url' => env('REDIS_URL'),
            'host' => env('REDIS_HOST', '127.0.0.1'),
            'password' => env('REDIS_PASSWORD', null),
            'port' => env('REDIS_PORT', '6379'),
            'database' => env('REDIS_DB', '0'),
        ],

    ],

];
