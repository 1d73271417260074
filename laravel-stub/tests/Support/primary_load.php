<?php

// A continuous load on the PRIMARY connection, phase by phase. Boots the application once, then
// loops: read a row count, insert a heartbeat. The phase is read from a file the test writes;
// "stop" ends the run. Prints, as JSON: per phase, queries run, failures, p50/p99 latency (ms).
// Arguments: application directory, phase file, ready file.

use Illuminate\Support\Facades\DB;

[$_, $appDir, $phaseFile, $readyFile] = $argv;
require $appDir.'/bootstrap/autoload.php';
$app = require $appDir.'/bootstrap/app.php';
$app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();
touch($readyFile);

$stats = [];
$failures = [];
while (true) {
    $phase = trim((string) @file_get_contents($phaseFile));
    if ($phase === 'stop') {
        break;
    }
    $started = hrtime(true);
    try {
        DB::connection('mysql')->select('SELECT COUNT(*) AS n FROM users');
        DB::connection('mysql')->insert('INSERT INTO heartbeats (phase) VALUES (?)', [$phase]);
        $stats[$phase][] = (hrtime(true) - $started) / 1e6;
    } catch (Throwable $e) {
        $failures[$phase][] = get_class($e).': '.$e->getMessage();
    }
    usleep(2000);
}

$out = [];
foreach (array_unique(array_merge(array_keys($stats), array_keys($failures))) as $phase) {
    $lat = $stats[$phase] ?? [];
    sort($lat);
    $pick = fn (float $p) => $lat ? $lat[(int) round((count($lat) - 1) * $p)] : null;
    $out[$phase] = ['queries' => count($lat), 'failures' => $failures[$phase] ?? [], 'p50_ms' => $pick(0.5), 'p99_ms' => $pick(0.99)];
}
echo json_encode($out);
