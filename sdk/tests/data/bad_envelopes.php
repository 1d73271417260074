<?php

// The SDK's corpus of bad events (bad_envelopes.json) as the PHP cases an array-taking
// emit_event() can receive — raw JSON text and non-object events do not apply — keyed by name:
// name => [event array, expected error]. Read by the PHP extension's and the Laravel package's
// tests, so both hold the same events to the same messages.

$out = [];
foreach (json_decode(file_get_contents(__DIR__.'/bad_envelopes.json'), true, 512, JSON_THROW_ON_ERROR) as $c) {
    if (isset($c['raw']) || ! is_array($c['event']) || array_is_list($c['event'])) {
        continue;
    }
    $out[$c['name']] = [$c['event'], $c['error']];
}

return $out;
