<?php

// Boots the application (console, as a queue worker) and stores N events through
// EventStore::create(). Arguments: the application's directory, N.

use SuiteX\EventBackbone\Models\EventStore;

require $argv[1].'/bootstrap/autoload.php';
$app = require $argv[1].'/bootstrap/app.php';
$app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();

for ($i = 0; $i < (int) $argv[2]; $i++) {
    EventStore::create([
        'account_id' => 7,
        'event_id' => sprintf('0190a7f2-4c1e-7b3a-9d2e-%012x', $i),
        'aggregate_type' => 'customer',
        'aggregate_id' => 'C-'.($i % 10),
        'event_type' => 'customer.updated',
        'payload' => ['i' => $i],
        'occurred_at' => gmdate('Y-m-d H:i:s').'.000000',
    ]);
}
echo EventStore::query()->count();
