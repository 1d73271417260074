<?php

namespace Tests\Feature;

use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;

/** The web tier never writes the event store: EventStore::create() in an HTTP request throws. */
final class WriteIsolationTest extends LaravelTestCase
{
    public function test_create_and_insert_throw_in_an_http_request_and_nothing_is_written(): void
    {
        $this->migrate();
        // A request handled by the application's HTTP kernel in a process that is not a console.
        [$code, $out, $err] = Harness::php(
            [dirname(__DIR__).'/Support/http_request.php', Harness::appDir()],
            $this->env(['APP_RUNNING_IN_CONSOLE' => 'false'])
        );
        $this->assertSame(0, $code, $out.$err);
        $result = json_decode($out, true, 512, JSON_THROW_ON_ERROR);
        $this->assertFalse($result['running_in_console']);
        foreach (['create', 'insert'] as $write) {
            $this->assertSame(500, $result[$write]['status'], $write);
            $this->assertSame('App\Exceptions\EventStoreWriteForbiddenException', $result[$write]['exception'], $write);
            $this->assertStringContainsString('Emit the event with Events::emit', $result[$write]['message']);
        }
        $this->assertSame(200, $result['read']['status'], 'reading the event store is allowed');
        $this->assertSame(['event_store' => 0], Harness::snapshot($this->eventStore), 'nothing was written');
    }

    public function test_create_is_allowed_in_a_console_process(): void
    {
        $this->migrate();
        $this->boot();
        $this->assertTrue($this->app->runningInConsole());
        $this->assertNotNull(\App\Models\EventStore::create($this->event())->id);
    }
}
