<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Models\EventStore;
use Tests\Support\LaravelTestCase;

/** Reading the ledger the Laravel way: scopes per tenant, aggregate, type and after a store id. */
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
        $this->assertSame([$ids[2], $ids[3]], EventStore::afterStoreId($ids[1])->pluck('id')->all());
        $this->assertSame([$ids[3]], EventStore::forAccount(7)->afterStoreId($ids[2])->pluck('id')->all());

        $first = EventStore::forAccount(7)->first();
        $this->assertSame(['n' => 0], $first->payload);
        $this->assertSame(['actor' => 'user:7'], $first->metadata);

        $seen = [];
        EventStore::forAccount(7)->lazyById(2)->each(function (EventStore $e) use (&$seen) {
            $seen[] = $e->id;
        });
        $this->assertSame([$ids[0], $ids[2], $ids[3]], $seen, 'lazyById pages through in id order');
    }
}
