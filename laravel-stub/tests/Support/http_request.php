<?php

// Handles requests through the application's HTTP kernel (not a console process) and prints,
// as JSON, what each route answered. Argument: the application's directory.

use App\Models\EventStore;
use Illuminate\Http\Request;

$appDir = $argv[1];
require $appDir.'/bootstrap/autoload.php';
$app = require $appDir.'/bootstrap/app.php';
$kernel = $app->make(Illuminate\Contracts\Http\Kernel::class);

$thrown = [];
$app->booted(function ($app) use (&$thrown) {
    $event = [
        'account_id' => 42, 'event_id' => '0190a7f2-4c1e-7b3a-9d2e-1f2a3b4c5d6e', 'aggregate_type' => 'customer',
        'aggregate_id' => 'C-1', 'event_type' => 'customer.updated', 'payload' => ['a' => 1],
        'occurred_at' => '2026-11-26 15:24:00.000000',
    ];
    $router = $app['router'];
    $router->post('/create', fn () => EventStore::create($event)->id);
    $router->post('/insert', fn () => EventStore::insert([array_merge($event, ['payload' => '{"a":1}'])]) ? 'ok' : 'no');
    $router->get('/read', fn () => (string) EventStore::query()->count());
});
$app->make(Illuminate\Contracts\Debug\ExceptionHandler::class);
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

$result = [];
foreach (['create' => 'POST', 'insert' => 'POST', 'read' => 'GET'] as $path => $method) {
    $thrown = [];
    $response = $kernel->handle(Request::create("/$path", $method));
    $e = $thrown[0] ?? null;
    $result[$path] = [
        'status' => $response->getStatusCode(),
        'exception' => $e ? get_class($e) : null,
        'message' => $e ? $e->getMessage() : null,
    ];
}
$result['running_in_console'] = $app->runningInConsole();
echo json_encode($result);
