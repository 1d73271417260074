<?php

// A front controller for php-fpm: boots the composed application (SUITEX_APP_DIR) in the web
// SAPI, runs the write path named by ?path= (tests/Support/write_paths.php) or a read (?path=read)
// inside a route of the HTTP kernel, and prints as JSON what happened: the SAPI, the response
// status, the exception, and every statement other than a SELECT that reached the database.

use SuiteX\EventBackbone\Models\EventStore;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\DB;

$appDir = getenv('SUITEX_APP_DIR');
require $appDir.'/bootstrap/autoload.php';
$app = require $appDir.'/bootstrap/app.php';
$kernel = $app->make(Illuminate\Contracts\Http\Kernel::class);

$thrown = [];
$sent = [];
$name = $_GET['path'] ?? 'read';
$event = json_decode($_GET['event'] ?? '{}', true);
$app->booted(function ($app) use ($name, $event, &$sent) {
    DB::listen(function ($query) use (&$sent) {
        if (! preg_match('/^\s*(select|show)\b/i', $query->sql)) {
            $sent[] = $query->sql;
        }
    });
    $paths = require __DIR__.'/write_paths.php';
    $app['router']->get('/run', function () use ($name, $event, $paths) {
        if ($name === 'read') {
            return (string) EventStore::query()->count();
        }
        $paths[$name]($event);

        return 'written';
    });
});
$app->instance(Illuminate\Contracts\Debug\ExceptionHandler::class, new class($app, $thrown) extends App\Exceptions\Handler {
    public function __construct($app, private array &$thrown)
    {
        parent::__construct($app);
    }

    public function report(Throwable $e)
    {
        $this->thrown[] = $e;
    }
});

$response = $kernel->handle(Request::create('/run', 'GET'));
$e = $thrown[0] ?? null;
header('Content-Type: application/json');
echo json_encode([
    'sapi' => PHP_SAPI,
    'running_in_console' => $app->runningInConsole(),
    'status' => $response->getStatusCode(),
    'body' => $e ? null : $response->getContent(),
    'exception' => $e ? get_class($e) : null,
    'message' => $e ? $e->getMessage() : null,
    'sent' => $sent,
]);
