<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Models\EventStore;
use Illuminate\Support\Facades\DB;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;

/**
 * Scenario 2: the primary database and the event store side by side. Writes through
 * EventStore land in the event store database only; the primary database works as before.
 */
final class EventStoreConnectionTest extends LaravelTestCase
{
    public function test_artisan_migrate_creates_the_table_on_the_event_store_connection_only(): void
    {
        // SuiteX's primary database already records its migrations.
        [$code, $out, $err] = Harness::artisan(['migrate:install'], $this->env());
        $this->assertSame(0, $code, $out.$err);
        $before = Harness::snapshot($this->primary);

        $this->migrate();

        $this->assertSame(['event_store', 'event_store_aggregates', 'event_store_merged_position', 'event_store_parked_events', 'event_store_parking', 'event_store_sequence'], array_keys(Harness::snapshot($this->eventStore)));
        $after = Harness::snapshot($this->primary);
        $this->assertSame(array_keys($before), array_keys($after), 'no table is added to the primary database');
        $this->assertArrayNotHasKey('event_store', $after);
        $this->assertSame($before['users'], $after['users']);
        $packageMigrations = count(glob(dirname(__DIR__, 2).'/database/migrations/*.php'));
        $this->assertSame($before['migrations'] + $packageMigrations, $after['migrations'], 'only the migration records, one per package migration');
    }

    public function test_create_writes_the_event_store_database_only_and_the_primary_keeps_working(): void
    {
        $this->migrate();
        $this->boot();
        $primaryBefore = Harness::snapshot($this->primary);

        $this->assertSame(2, DB::table('users')->count(), 'the primary connection works before');
        $first = EventStore::create($this->event());
        $this->assertSame('ada@example.com', DB::connection('mysql')->table('users')->orderBy('id')->value('email'), 'and during');
        $second = EventStore::create($this->event(['aggregate_id' => 'C-1002', 'payload' => ['n' => 1.5, 'empty' => new \stdClass()]]));
        $this->assertSame(2, DB::table('users')->count(), 'and after');

        $this->assertSame($primaryBefore, Harness::snapshot($this->primary), 'the primary database gains no row or table');
        $this->assertSame(['event_store' => 2, 'event_store_aggregates' => 2, 'event_store_merged_position' => 0, 'event_store_parked_events' => 0, 'event_store_parking' => 0, 'event_store_sequence' => 1], Harness::snapshot($this->eventStore));
        $this->assertGreaterThan($first->id, $second->id);

        $stored = EventStore::query()->orderBy('id')->get();
        $this->assertSame(['name' => 'Zoë', 'plan' => 'pro', 'tags' => []], $stored[0]->payload);
        $this->assertSame(['actor' => 'user:7'], $stored[0]->metadata);
        $this->assertSame('2026-11-26 15:24:00.123456', $stored[0]->occurred_at->format('Y-m-d H:i:s.u'));
        $this->assertNotNull($stored[0]->created_at);
        $this->assertSame(42, $stored[0]->account_id);
        $this->assertSame('event_store', $stored[0]->getConnectionName());
    }

    public function test_a_repeated_event_id_is_refused_by_the_unique_key(): void
    {
        $this->migrate();
        $this->boot();
        $event = $this->event();
        EventStore::create($event);
        $this->expectException(\Illuminate\Database\QueryException::class);
        $this->expectExceptionMessage('event_store_event_id_unique');
        EventStore::create($event);
    }
}
