<?php

// Throughput of the two workers on the same machine, in the same run: `suitex-events worker`
// (Rust) and `php artisan events:work` (PHP, EventStore::create()). For each round and worker:
// a fresh pipeline on the emulators and a fresh event store database, N events emitted first
// (a backlog), then the worker is started and timed until all N rows are stored.
// Run by scripts/bench-workers (release builds, fresh services). Options: --events N --rounds R

use Tests\Support\Emulator;
use Tests\Support\Harness;
use Tests\Support\Pipeline;

require_once 'Illuminate/autoload.php';
require_once __DIR__.'/../tests/Support/Harness.php';
require_once __DIR__.'/../../php-ext/tests/Support/Emulator.php';
require_once __DIR__.'/../tests/Support/Pipeline.php';
Harness::registerAppAutoloader();

$opts = getopt('', ['events:', 'rounds:']);
$n = (int) ($opts['events'] ?? 3000);
$rounds = (int) ($opts['rounds'] ?? 2);
$bin = Pipeline::required('SUITEX_EVENTS_BIN', 'the suitex-events binary (release)');
$extension = Emulator::extensionPath();

/** Seconds from starting `$cmd` until `$n` rows are in `$database`. */
function timed(array $cmd, array $env, string $database, int $n): float
{
    $log = tempnam(sys_get_temp_dir(), 'bench-worker');
    $started = microtime(true);
    $proc = proc_open($cmd, [1 => ['file', $log, 'w'], 2 => ['file', $log, 'a']], $pipes, Harness::appDir(), array_merge(Harness::baseEnv(), $env));
    $pdo = Harness::pdo($database);
    $deadline = $started + 600;
    while ((int) $pdo->query('SELECT COUNT(*) FROM event_store')->fetchColumn() < $n) {
        if (microtime(true) > $deadline || ! proc_get_status($proc)['running']) {
            proc_terminate($proc, SIGKILL);
            throw new RuntimeException("the worker did not store $n events:\n".file_get_contents($log));
        }
        usleep(20_000);
    }
    $elapsed = microtime(true) - $started;
    proc_terminate($proc, SIGTERM);
    proc_close($proc);
    unlink($log);

    return $elapsed;
}

$events = [];
for ($i = 0; $i < $n; $i++) {
    $events[] = ['account_id' => 42, 'aggregate_type' => 'customer', 'aggregate_id' => 'C-'.($i % 20),
        'event_type' => 'customer.updated', 'payload' => ['seq' => $i, 'name' => 'Zoë', 'plan' => 'pro', 'tags' => ['a', 'b']]];
}
$workers = [
    'rust  suitex-events worker' => fn () => [$bin, 'worker'],
    'php   artisan events:work ' => fn () => [PHP_BINARY, '-d', "extension=$extension", 'artisan', 'events:work'],
];
$results = array_fill_keys(array_keys($workers), []);
printf("workers: %d events over 20 keys per run (backlog emitted first), %d rounds; time from start to the last row\n", $n, $rounds);
for ($r = 1; $r <= $rounds; $r++) {
    foreach ($workers as $name => $cmd) {
        $primary = Harness::createDatabase('benchp');
        $store = Harness::createDatabase('benches');
        $pipeline = new Pipeline('bench');
        $env = Harness::env($primary, $store, $pipeline->env);
        [$code, $out, $err] = Harness::artisan(['migrate', '--force'], Harness::migrator($env));
        if ($code !== 0) {
            throw new RuntimeException("migrate: $out $err");
        }
        $pipeline->provision();
        $pipeline->emit($events);
        $seconds = timed($cmd(), $env, $store, $n);
        $results[$name][] = $n / $seconds;
        printf("  round %d  %s  %8.0f events/s  (%.2f s)\n", $r, $name, $n / $seconds, $seconds);
        Harness::dropDatabase($primary);
        Harness::dropDatabase($store);
    }
}
$median = function (array $xs): float {
    sort($xs);
    $m = intdiv(count($xs), 2);

    return count($xs) % 2 ? $xs[$m] : ($xs[$m - 1] + $xs[$m]) / 2;
};
[$rust, $php] = array_map($median, array_values($results));
printf("median: rust %.0f events/s, php %.0f events/s; php / rust = %.2fx\n", $rust, $php, $php / $rust);
