<?php

// The extension must be loaded into the PHP running the tests (php -d extension=…).
if (! extension_loaded('suitex_events')) {
    fwrite(STDERR, "The suitex_events extension is not loaded: run php -d extension=target/debug/libsuitex_events_php.so /usr/bin/phpunit -c php-ext/tests/phpunit.xml\n");
    exit(1);
}

require __DIR__.'/Support/Emulator.php';
require __DIR__.'/Support/OtlpReceiver.php';

// A topology of this run's own on the emulators; emit_event() reads it from the environment.
\Tests\Support\Emulator::provisionRun();
