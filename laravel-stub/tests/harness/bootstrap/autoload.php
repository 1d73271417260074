<?php

// Laravel from Debian's php-laravel-framework (found on PHP's include path), then Composer's
// autoloader: the packages the application required (suitex/event-backbone) and its own App\.
require_once 'Illuminate/autoload.php';
require_once dirname(__DIR__).'/vendor/autoload.php';
