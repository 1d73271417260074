<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Models\EventStore;
use Tests\Support\LaravelTestCase;

/** Reading the ledger the Laravel way: scopes per tenant, aggregate, type and after a seq. */
final class ReadingTest extends LaravelTestCase
{
    public function test_scopes_select_in_store_order_with_payload_and_metadata_as_arrays(): void
    {
        $this->migrate();
        $this->boot(['DB_EVENT_STORE_ROLE' => 'writer']);
        $ids = [];
        foreach ([[7, 'C-1', 'customer.created'], [8, 'C-1', 'customer.created'], [7, 'C-2', 'customer.updated'], [7, 'C-1', 'customer.updated']] as $i => [$account, $aggregate, $type]) {
            $ids[] = EventStore::create($this->event([
                'account_id' => $account, 'aggregate_id' => $aggregate, 'event_type' => $type, 'payload' => ['n' => $i],
            ]))->id;
        }
        // The web tier reads with its default role.
        $this->boot(['DB_EVENT_STORE_ROLE' => 'reader']);

        $this->assertSame([$ids[0], $ids[2], $ids[3]], EventStore::forAccount(7)->pluck('id')->all());
        $this->assertSame([$ids[0], $ids[3]], EventStore::forAggregate(7, 'customer', 'C-1')->pluck('id')->all());
        $this->assertSame([$ids[2], $ids[3]], EventStore::ofType('customer.updated')->pluck('id')->all());
        // seq and aggregate_version come from the database, whatever the writer gave.
        $this->assertSame([1, 2, 3, 4], EventStore::afterSeq(0)->pluck('seq')->all());
        $this->assertSame([1, 1, 1, 2], EventStore::afterSeq(0)->pluck('aggregate_version')->all());
        $this->assertSame([$ids[2], $ids[3]], EventStore::afterSeq(2)->pluck('id')->all());
        $this->assertSame([$ids[3]], EventStore::forAccount(7)->afterSeq(3)->pluck('id')->all());
        $this->assertSame([1, 2], EventStore::forAggregate(7, 'customer', 'C-1')->pluck('aggregate_version')->all());

        $first = EventStore::forAccount(7)->first();
        $this->assertSame(['n' => 0], $first->payload);
        $this->assertSame(['actor' => 'user:7'], $first->metadata);

        $seen = [];
        EventStore::forAccount(7)->lazyBySeq(2)->each(function (EventStore $e) use (&$seen) {
            $seen[] = $e->seq;
        });
        $this->assertSame([1, 3, 4], $seen, 'lazyBySeq pages through in seq order');

        // The id-based scope still answers, with a deprecation that says why.
        $deprecations = [];
        set_error_handler(function (int $level, string $message) use (&$deprecations) {
            $deprecations[] = $message;

            return true;
        }, E_USER_DEPRECATED);
        try {
            $this->assertSame([$ids[2], $ids[3]], EventStore::afterStoreId($ids[1])->pluck('id')->all());
        } finally {
            restore_error_handler();
        }
        $this->assertCount(1, $deprecations);
        $this->assertStringContainsString('use afterSeq()', $deprecations[0]);
    }

    public function test_a_seq_given_by_the_writer_is_replaced_by_the_ledgers_own(): void
    {
        $this->migrate();
        $this->boot(['DB_EVENT_STORE_ROLE' => 'writer']);
        $model = new EventStore();
        $model->forceFill($this->event(['payload' => ['n' => 1]]) + ['seq' => 99, 'aggregate_version' => 42]);
        $model->save();
        $row = EventStore::query()->where('id', $model->id)->first();
        $this->assertSame([1, 1], [$row->seq, $row->aggregate_version]);
    }
}
