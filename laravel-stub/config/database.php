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

// TLS fails closed, as in the suitex-events worker: without DB_EVENT_STORE_SSL_MODE, a CA means
// verify the server, a non-local host means TLS required, and only a Unix socket or a loopback
// address (the Cloud SQL Auth Proxy, a development database) may go without. PDO (mysqlnd)
// always checks the server's name when it verifies a certificate, so PHP verifies with
// verify_identity; verify_ca is refused (SuiteX\EventBackbone\Database\EventStoreConnection says why).
$eventStoreHost = (string) env('DB_EVENT_STORE_HOST', '127.0.0.1');
$eventStoreCa = env('DB_EVENT_STORE_SSL_CA') ?: null;
$eventStoreLocal = (string) env('DB_EVENT_STORE_SOCKET', '') !== ''
    || in_array(strtolower($eventStoreHost), ['localhost', '::1', '[::1]'], true)
    || str_starts_with($eventStoreHost, '127.');
$eventStoreSslMode = strtolower((string) (env('DB_EVENT_STORE_SSL_MODE')
    ?: ($eventStoreCa !== null ? 'verify_identity' : ($eventStoreLocal ? 'preferred' : 'required'))));
$eventStoreTls = [
    'disabled' => [],
    // PDO has no opportunistic TLS: preferred is plain text, which is why it is local-only.
    'preferred' => [],
    // Encrypted, not verified: a CA path (or the given CA) only switches mysqlnd's TLS on.
    'required' => [
        PDO::MYSQL_ATTR_SSL_CA => $eventStoreCa,
        PDO::MYSQL_ATTR_SSL_CAPATH => $eventStoreCa === null ? '/etc/ssl/certs' : null,
        PDO::MYSQL_ATTR_SSL_VERIFY_SERVER_CERT => false,
    ],
    'verify_identity' => [
        PDO::MYSQL_ATTR_SSL_CA => $eventStoreCa,
        PDO::MYSQL_ATTR_SSL_VERIFY_SERVER_CERT => true,
    ],
][$eventStoreSslMode] ?? [];
if ($eventStoreTls !== []) {
    $eventStoreTls[PDO::MYSQL_ATTR_SSL_CERT] = env('DB_EVENT_STORE_SSL_CERT') ?: null;
    $eventStoreTls[PDO::MYSQL_ATTR_SSL_KEY] = env('DB_EVENT_STORE_SSL_KEY') ?: null;
}

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
            // A file holding the password instead (a mounted secret, a token a sidecar refreshes):
            // read each time the connection is made, so a rotation reaches `events:work` when it
            // purges its connection after an authentication error. Wins over the password.
            'password_file' => env('DB_EVENT_STORE_PASSWORD_FILE') ?: null,
            'unix_socket' => env('DB_EVENT_STORE_SOCKET', ''),
            'charset' => 'utf8mb4',
            'collation' => 'utf8mb4_unicode_ci',
            'prefix' => '',
            'prefix_indexes' => true,
            'strict' => true,
            'engine' => 'InnoDB',
            // What this process may do with the event store: reader (default; the web tier),
            // writer (the worker), migrator (migrations). Enforced before any SQL is sent
            // (SuiteX\EventBackbone\Database\EventStoreConnection) and by the role's database account.
            'role' => env('DB_EVENT_STORE_ROLE', 'reader'),
            // Checked by SuiteX\EventBackbone\Database\EventStoreConnection when the connection is made.
            'ssl_mode' => $eventStoreSslMode,
            'ssl_ca' => $eventStoreCa,
            'local' => $eventStoreLocal,
            'allow_plaintext' => filter_var(env('DB_EVENT_STORE_ALLOW_PLAINTEXT', false), FILTER_VALIDATE_BOOLEAN),
            // The event store keeps UTC, like the worker's sessions.
            'timezone' => '+00:00',
            'options' => extension_loaded('pdo_mysql') ? array_filter($eventStoreTls + [
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
