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

];
