<?php

// Laravel from Debian's php-laravel-framework (on PHP's include path); the package and the
// harness application's classes through the composed application's Composer autoloader.
require_once 'Illuminate/autoload.php';
require_once __DIR__.'/Support/Harness.php';
require_once __DIR__.'/Support/PrivateMariaDb.php';
// The emulators' REST calls are the PHP extension suite's.
require_once __DIR__.'/../../php-ext/tests/Support/Emulator.php';
require_once __DIR__.'/../../php-ext/tests/Support/OtlpReceiver.php';
require_once __DIR__.'/Support/Pipeline.php';
require_once __DIR__.'/Support/LaravelTestCase.php';

\Tests\Support\Harness::registerAppAutoloader();
