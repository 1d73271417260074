<?php

// Laravel from Debian's php-laravel-framework (found on PHP's include path), and the
// application's own classes — what Composer's autoloader does in SuiteX.
require_once 'Illuminate/autoload.php';

spl_autoload_register(function (string $class) {
    if (strncmp($class, 'App\\', 4) === 0) {
        $file = dirname(__DIR__).'/app/'.str_replace('\\', '/', substr($class, 4)).'.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
