<?php

// Boots the application (console) and reports whether the primary and the event store answer.
// Argument: the application's directory.

use SuiteX\EventBackbone\Models\EventStore;
use Illuminate\Support\Facades\DB;

require $argv[1].'/bootstrap/autoload.php';
$app = require $argv[1].'/bootstrap/app.php';
$app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();

$result = ['booted' => true, 'primary_users' => (int) DB::connection('mysql')->table('users')->count()];
try {
    $result['event_store_rows'] = EventStore::query()->count();
} catch (Throwable $e) {
    $result['event_store_error'] = get_class($e);
}
echo json_encode($result);
