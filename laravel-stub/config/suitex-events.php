<?php

/*
|--------------------------------------------------------------------------
| SuiteX event backbone
|--------------------------------------------------------------------------
|
| Published with `php artisan vendor:publish --tag=suitex-events-config`. The emitter itself
| (project, topics, bucket, deadlines) is configured in php.ini or the environment, where the
| suitex_events extension reads it; the event store's connection (host, account, TLS, role) is
| the `event_store` entry of config/database.php (see config/database.php in this package).
|
*/

return [

    // The connection the EventStore model and the migration use, and the one whose statements
    // are checked against DB_EVENT_STORE_ROLE.
    'connection' => 'event_store',

    // Run the package's event_store migration with `php artisan migrate`. Turn off after
    // publishing it (--tag=suitex-events-migrations), or when `suitex-events migrate` creates
    // the table instead.
    'migrations' => (bool) env('SUITEX_EVENTS_MIGRATIONS', true),

    // `php artisan events:work`, the PHP worker (the process whose event_store connection has
    // the writer role). Pub/Sub settings come from the extension's php.ini / environment.
    'worker' => [
        // Attempts after which events.raw-sub dead-letters a message (its dead-letter policy;
        // terraform/ sets 5): a poison event's key goes on at once on its last attempt.
        'max_delivery_attempts' => (int) env('SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS', 5),
        // Back-off while the database or Pub/Sub is away: from the first wait, doubling, up to the
        // longest (with jitter). Events in hand keep their leases meanwhile. The Rust worker's
        // settings, names, format (`200ms`, `30s`, `2m`; a bare number is milliseconds) and
        // defaults alike (sdk/src/settings.rs; a test compares them). The 0.2 names
        // SUITEX_WORKER_BACKOFF_INITIAL_MS / _MAX_MS (milliseconds) are still read, deprecated.
        'backoff_min' => env('SUITEX_WORKER_BACKOFF_MIN', env('SUITEX_WORKER_BACKOFF_INITIAL_MS', '200ms')),
        'backoff_max' => env('SUITEX_WORKER_BACKOFF_MAX', env('SUITEX_WORKER_BACKOFF_MAX_MS', '30s')),
    ],

];
