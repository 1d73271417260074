<?php

// The suitex_events extension's exception classes, declared only when the extension is not
// loaded (Events::fake() in an application's tests): code that catches them works the same.

namespace SuiteX\Events;

if (! class_exists(Exception::class, false)) {
    class Exception extends \Exception
    {
    }

    class ValidationException extends Exception
    {
    }

    class ConfigurationException extends Exception
    {
    }

    class PublishException extends Exception
    {
    }
}
