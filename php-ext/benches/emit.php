<?php

// The PHP side of `cargo bench -p suitex_events --bench compare`; run by it, with the release
// extension loaded and SUITEX_EVENTS_* naming a fresh topic. Prints one JSON object.
//
//   batch  EVENTS KEYS CHUNK   emit_events() over CHUNK-sized slices; {"seconds": …}
//   single CALLS KEYS          sequential emit_event() after 20 warm-up calls;
//                              {"p50_us": …, "p99_us": …, "mean_us": …}
//   many   CALLS KEYS          CALLS sequential emit_event() (a web tier's shape: one event per
//                              call), after one warm-up call; {"seconds": …}

use function SuiteX\Events\emit_event;
use function SuiteX\Events\emit_events;

[, $mode, $n, $keys] = $argv + [null, null, null, null];
$n = (int) $n;
$keys = (int) $keys;
$filler = str_repeat('x', 1024 - 40);
$event = fn (int $i) => [
    'account_id' => 7,
    'aggregate_type' => 'customer',
    'aggregate_id' => 'C-'.($i % $keys),
    'event_type' => 'customer.updated',
    'payload' => ['seq' => $i, 'filler' => $filler],
];

if ($mode === 'batch') {
    $chunk = (int) $argv[4];
    // The application's arrays exist before the clock starts, as the Rust side's events do.
    $batches = array_chunk(array_map($event, range(0, $n - 1)), $chunk);
    // Connected and warm before the clock starts (the first call makes the runtime and channel).
    emit_event($event(0));
    $started = hrtime(true);
    foreach ($batches as $batch) {
        foreach (emit_events($batch) as $receipt) {
            if ($receipt['error'] !== null) {
                fwrite(STDERR, "emit failed: {$receipt['error']}\n");
                exit(1);
            }
        }
    }
    echo json_encode(['seconds' => (hrtime(true) - $started) / 1e9]);
} elseif ($mode === 'single') {
    for ($i = 0; $i < 20; $i++) {
        emit_event($event($i));
    }
    $events = array_map($event, range(0, $n - 1));
    $us = [];
    foreach ($events as $e) {
        $t = hrtime(true);
        emit_event($e);
        $us[] = (hrtime(true) - $t) / 1e3;
    }
    sort($us);
    echo json_encode([
        'p50_us' => $us[intdiv(count($us), 2)],
        'p99_us' => $us[min(count($us) - 1, (int) floor(count($us) * 0.99))],
        'mean_us' => array_sum($us) / count($us),
    ]);
} elseif ($mode === 'many') {
    $events = array_map($event, range(0, $n - 1));
    emit_event($event(0));
    $started = hrtime(true);
    foreach ($events as $e) {
        emit_event($e);
    }
    echo json_encode(['seconds' => (hrtime(true) - $started) / 1e9]);
} else {
    fwrite(STDERR, "usage: emit.php batch EVENTS KEYS CHUNK | single CALLS KEYS | many CALLS KEYS\n");
    exit(2);
}
