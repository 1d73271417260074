<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Exceptions\EventStoreImmutableException;
use SuiteX\EventBackbone\Models\EventStore;
use Illuminate\Support\Facades\DB;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;

/** Every way Eloquent offers to change or remove a stored event is refused. */
final class ImmutabilityTest extends LaravelTestCase
{
    private EventStore $stored;

    protected function setUp(): void
    {
        parent::setUp();
        $this->migrate();
        $this->boot();
        $this->stored = EventStore::create($this->event());
    }

    public function mutations(): array
    {
        return [
            'update()' => [fn (EventStore $e) => $e->update(['event_type' => 'changed'])],
            'save() of an existing row' => [function (EventStore $e) {
                $e->event_type = 'changed';
                $e->save();
            }],
            'touch()' => [fn (EventStore $e) => $e->touch()],
            'delete()' => [fn (EventStore $e) => $e->delete()],
            'forceDelete()' => [fn (EventStore $e) => $e->forceDelete()],
            'destroy()' => [fn (EventStore $e) => EventStore::destroy($e->id)],
            'increment() on the model' => [fn (EventStore $e) => $e->increment('account_id')],
            'mass update' => [fn (EventStore $e) => EventStore::query()->update(['event_type' => 'changed'])],
            'mass update with where' => [fn (EventStore $e) => EventStore::where('id', $e->id)->update(['event_type' => 'x'])],
            'mass delete' => [fn (EventStore $e) => EventStore::where('id', $e->id)->delete()],
            'mass increment' => [fn (EventStore $e) => EventStore::query()->increment('account_id')],
            'mass decrement' => [fn (EventStore $e) => EventStore::query()->decrement('account_id')],
            'upsert' => [fn (EventStore $e) => EventStore::upsert([$this->event(['event_id' => $e->event_id])], ['event_id'], ['event_type'])],
            'truncate' => [fn (EventStore $e) => EventStore::truncate()],
            'insertOrIgnore' => [fn (EventStore $e) => EventStore::query()->insertOrIgnore([$this->event()])],
        ];
    }

    /** @dataProvider mutations */
    public function test_mutation_throws_and_changes_nothing(callable $mutate): void
    {
        $before = EventStore::query()->get()->toArray();
        try {
            $mutate($this->stored);
            $this->fail('the mutation was not refused');
        } catch (EventStoreImmutableException $e) {
            $this->assertStringStartsWith('event_store is append-only: ', $e->getMessage());
        }
        $this->assertEquals($before, EventStore::query()->get()->toArray(), 'the stored event is unchanged');
    }

    public function test_raw_update_and_delete_are_refused_by_the_triggers(): void
    {
        // The raw PDO, past the connection's role check: the triggers are the last line.
        $pdo = DB::connection('event_store')->getPdo();
        foreach ([
            'UPDATE event_store SET event_type = ?' => 'event_store is append-only: UPDATE is not allowed',
            'DELETE FROM event_store WHERE id > ?' => 'event_store is append-only: DELETE is not allowed',
        ] as $sql => $message) {
            try {
                $pdo->prepare($sql)->execute(str_starts_with($sql, 'UPDATE') ? ['changed'] : [0]);
                $this->fail("$sql was not refused");
            } catch (\PDOException $e) {
                $this->assertStringContainsString($message, $e->getMessage());
            }
        }
        $this->assertSame('customer.updated', EventStore::query()->value('event_type'));
        $this->assertSame(1, EventStore::query()->count());
    }

    public function test_a_rollback_never_drops_stored_events(): void
    {
        [$code, $out, $err] = Harness::artisan(['migrate:rollback', '--force'], Harness::migrator($this->env()));
        $this->assertNotSame(0, $code, 'the rollback stops');
        $this->assertStringContainsString('event_store holds 1 events and is append-only', $out.$err);
        // The parking tables, empty, went first (the newest migration); the ledger stays whole.
        $this->assertSame(['event_store' => 1, 'event_store_aggregates' => 1, 'event_store_merged_position' => 0, 'event_store_sequence' => 1], Harness::snapshot($this->eventStore));
    }

    public function test_a_rollback_of_an_empty_event_store_removes_it(): void
    {
        $empty = Harness::createDatabase('es_empty');
        $env = Harness::migrator(Harness::env($this->primary, $empty));
        try {
            $this->assertSame(0, Harness::artisan(['migrate', '--force'], $env)[0]);
            [$code, $out, $err] = Harness::artisan(['migrate:rollback', '--force'], $env);
            $this->assertSame(0, $code, $out.$err);
            $this->assertSame([], Harness::snapshot($empty));
        } finally {
            Harness::dropDatabase($empty);
        }
    }
}
