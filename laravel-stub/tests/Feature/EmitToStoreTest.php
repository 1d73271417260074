<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Models\EventStore;
use Tests\Support\Emulator;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;
use Tests\Support\Pipeline;

/**
 * The whole path from SuiteX's side: Events::emit() in a Laravel process with the suitex_events
 * extension loaded → Pub/Sub emulator (and the claim-check bucket) → the worker → event_store
 * → read back through the EventStore model.
 */
final class EmitToStoreTest extends LaravelTestCase
{
    private $worker = null;

    protected function tearDown(): void
    {
        if (is_resource($this->worker)) {
            proc_terminate($this->worker, SIGTERM);
            proc_close($this->worker);
        }
        parent::tearDown();
    }

    public function test_events_emitted_through_the_facade_are_stored_and_read_through_the_model(): void
    {
        $extension = Emulator::extensionPath();
        $bin = Pipeline::required('SUITEX_EVENTS_BIN', 'the suitex-events binary');
        $this->migrate();

        $pipeline = new Pipeline('lara');
        $pipeline->provision();
        $env = $this->env($pipeline->env);

        $log = tempnam(sys_get_temp_dir(), 'worker');
        $this->worker = proc_open([$bin, 'worker'], [1 => ['file', $log, 'w'], 2 => ['file', $log, 'a']], $pipes, null, array_merge(Harness::baseEnv(), $env));

        // A web request's worth of emitting, in a PHP process that loads the extension.
        $script = sprintf(
            'require %s; $app = require %s; $app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();'
            .' $small = SuiteX\EventBackbone\Facades\Events::emit(["account_id" => 42, "aggregate_type" => "customer", "aggregate_id" => "C-7", "event_type" => "customer.updated", "payload" => ["name" => "Zoë", "tags" => []], "metadata" => ["actor" => "user:7"]]);'
            .' $big = SuiteX\EventBackbone\Facades\Events::emitBatch([["account_id" => 42, "aggregate_type" => "customer", "aggregate_id" => "C-7", "event_type" => "customer.synced", "payload" => ["records" => array_fill(0, 9000, ["id" => 1234567, "memo" => "netsuite"])]]]);'
            .' echo json_encode([$small, $big[0]]);',
            var_export(Harness::appDir().'/bootstrap/autoload.php', true),
            var_export(Harness::appDir().'/bootstrap/app.php', true)
        );
        [$code, $out, $err] = Harness::php(['-d', "extension=$extension", '-r', $script], $env);
        $this->assertSame(0, $code, $out.$err);
        [$small, $big] = json_decode($out, true, 512, JSON_THROW_ON_ERROR);
        $this->assertSame('inline', $small['payload_location']);
        $this->assertSame('gcs', $big['payload_location'], 'the large payload went through the claim-check bucket');

        $this->boot($pipeline->env);
        $until = microtime(true) + 60;
        while (EventStore::query()->count() < 2 && microtime(true) < $until) {
            usleep(200_000);
        }
        $rows = EventStore::query()->forAggregate(42, 'customer', 'C-7')->get();
        $this->assertCount(2, $rows, 'the worker stored both events: '.file_get_contents($log));
        $this->assertSame([$small['event_id'], $big['event_id']], $rows->pluck('event_id')->all(), 'in emitted order');
        $this->assertSame(['name' => 'Zoë', 'tags' => []], $rows[0]->payload);
        $this->assertSame(['actor' => 'user:7'], $rows[0]->metadata);
        $this->assertCount(9000, $rows[1]->payload['records'], 'the stored payload is the full document, not the reference');
        unlink($log);
    }
}
