<?php

// Emits events with the suitex_events extension (loaded by the caller, configured by the
// environment) as SuiteX's web tier does. Argument: a JSON file holding the list of events.
// Prints the event ids, in order, as JSON.

$events = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);
$ids = [];
foreach (array_chunk($events, 100) as $chunk) {
    foreach (\SuiteX\Events\emit_events($chunk) as $receipt) {
        $ids[] = $receipt['event_id'];
    }
}
echo json_encode($ids);
