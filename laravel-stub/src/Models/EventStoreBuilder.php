<?php

namespace SuiteX\EventBackbone\Models;

use SuiteX\EventBackbone\Exceptions\EventStoreImmutableException;
use Illuminate\Database\Eloquent\Builder;

/**
 * The query builder of EventStore. Bulk statements never fire model events, so the append-only
 * rule is enforced here for them: mass updates and deletes throw. Whether this process may
 * insert at all is the event_store connection's to decide, for every path alike
 * (SuiteX\EventBackbone\Database\EventStoreConnection, DB_EVENT_STORE_ROLE).
 */
class EventStoreBuilder extends Builder
{
    /**
     * Iterates lazily in ledger order, a page of `$chunkSize` rows at a time, each page read
     * after the last `seq` of the one before (never OFFSET): rows committed meanwhile are
     * seen, none skipped.
     */
    public function lazyBySeq(int $chunkSize = 1000)
    {
        return $this->lazyById($chunkSize, 'seq');
    }

    public function update(array $values)
    {
        throw EventStoreImmutableException::refuse('a mass update');
    }

    public function upsert(array $values, $uniqueBy, $update = null)
    {
        throw EventStoreImmutableException::refuse('an upsert');
    }

    public function increment($column, $amount = 1, array $extra = [])
    {
        throw EventStoreImmutableException::refuse('an increment');
    }

    public function decrement($column, $amount = 1, array $extra = [])
    {
        throw EventStoreImmutableException::refuse('a decrement');
    }

    public function delete()
    {
        throw EventStoreImmutableException::refuse('a mass delete');
    }

    public function forceDelete()
    {
        throw EventStoreImmutableException::refuse('a force delete');
    }

    public function truncate()
    {
        throw EventStoreImmutableException::refuse('truncating the table');
    }

    public function insertOrIgnore(array $values)
    {
        // INSERT IGNORE would also swallow real errors (a truncated payload, a bad date).
        throw EventStoreImmutableException::refuse('INSERT IGNORE');
    }
}
