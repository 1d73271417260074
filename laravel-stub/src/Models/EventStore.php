<?php

namespace SuiteX\EventBackbone\Models;

use SuiteX\EventBackbone\Casts\JsonDocument;
use SuiteX\EventBackbone\Exceptions\EventStoreImmutableException;
use SuiteX\EventBackbone\Exceptions\EventStoreWriteForbiddenException;
use Illuminate\Database\Eloquent\Model;

/**
 * One stored event of the append-only event store (the `event_store` connection).
 *
 * Immutable: updating, saving an existing row, deleting, force-deleting and mass updates or
 * deletes throw EventStoreImmutableException (and the table's triggers refuse them as well).
 * Write isolation: only a process whose `event_store` connection has the writer role
 * (DB_EVENT_STORE_ROLE=writer: the worker) may create rows; with the default reader role —
 * the web tier — every write path throws EventStoreWriteForbiddenException before any SQL is
 * sent (SuiteX\EventBackbone\Database\EventStoreConnection), and the reader's database account refuses it too.
 * The web tier emits through Events::emitEvent() and the worker stores.
 *
 * @property int $id
 * @property int $seq the row's position in the ledger: 1, 2, 3 … in commit order, without gaps
 * @property int $account_id
 * @property string $event_id
 * @property string $aggregate_type
 * @property string $aggregate_id
 * @property int $aggregate_version the event's number within its aggregate: 1, 2, 3 …
 * @property string $event_type
 * @property array|null $payload
 * @property array|null $metadata
 * @property \Illuminate\Support\Carbon $occurred_at
 * @property \Illuminate\Support\Carbon $created_at
 */
class EventStore extends Model
{
    protected $connection = 'event_store';

    /** The connection named in config/suitex-events.php (`event_store` by default). */
    public function getConnectionName()
    {
        return $this->connection === 'event_store' ? config('suitex-events.connection', 'event_store') : $this->connection;
    }

    protected $table = 'event_store';

    /** created_at is set by the database at commit; there is no updated_at. */
    public $timestamps = false;

    /** seq and aggregate_version are assigned by the database's trigger, whatever is given. */
    protected $guarded = ['id', 'seq', 'aggregate_version', 'created_at'];

    protected $casts = [
        'account_id' => 'integer',
        'seq' => 'integer',
        'aggregate_version' => 'integer',
        // Arrays when read; written from an array, or byte for byte from a JsonText.
        'payload' => JsonDocument::class,
        'metadata' => JsonDocument::class,
        'occurred_at' => 'datetime',
        'created_at' => 'datetime',
    ];

    /** Microseconds, as the columns (DATETIME(6)) and the envelope's occurred_at carry. */
    protected $dateFormat = 'Y-m-d H:i:s.u';

    protected static function booted()
    {
        static::updating(function () {
            throw EventStoreImmutableException::refuse('updating an event');
        });
        static::saving(function (EventStore $event) {
            if ($event->exists) {
                throw EventStoreImmutableException::refuse('saving an existing event');
            }
        });
        static::deleting(function () {
            throw EventStoreImmutableException::refuse('deleting an event');
        });
    }

    /**
     * Throws unless this process's `event_store` connection may append (the writer role), for
     * code that wants to know before it starts. Writes need not call it: the connection refuses
     * every write its role does not allow, before any SQL is sent.
     */
    public static function assertWritable(): void
    {
        $role = (new static())->getConnection()->getConfig('role') ?? 'reader';
        if (! in_array($role, ['writer', 'migrator'], true)) {
            throw EventStoreWriteForbiddenException::forRole($role, 'INSERT');
        }
    }

    /**
     * One aggregate's history, version 1, 2, 3 …: EventStore::forAggregate(42, 'customer',
     * 'C-1001')->get(). Uses the (account_id, aggregate_type, aggregate_id, aggregate_version)
     * key.
     */
    public function scopeForAggregate($query, int $accountId, string $aggregateType, string $aggregateId)
    {
        return $query->where('account_id', $accountId)
            ->where('aggregate_type', $aggregateType)
            ->where('aggregate_id', $aggregateId)
            ->orderBy('aggregate_version');
    }

    /** One tenant's events in ledger order: EventStore::forAccount(42)->get(). */
    public function scopeForAccount($query, int $accountId)
    {
        return $query->where('account_id', $accountId)->orderBy('seq');
    }

    /**
     * Events after ledger position `$seq`, in ledger order — for readers that follow the ledger
     * and remember the last `seq` they handled (events.merged carries it). `seq` is assigned in
     * commit order without gaps, so nothing committed later can appear behind it:
     * EventStore::afterSeq($last)->limit(500)->get(). For large reads iterate with
     * lazyBySeq(), which pages on `seq` instead of OFFSET:
     * EventStore::forAccount(42)->lazyBySeq(1000)->each(fn ($e) => …).
     */
    public function scopeAfterSeq($query, int $seq)
    {
        return $query->where('seq', '>', $seq)->orderBy('seq');
    }

    /**
     * @deprecated ids are not the ledger's order: rows take their id at INSERT and commit in any
     * order, so a reader going on from `id > $last` can step past a row that commits a moment
     * later and never see it. Use afterSeq().
     */
    public function scopeAfterStoreId($query, int $storeId)
    {
        trigger_error(
            'EventStore::afterStoreId() is deprecated: ids are not commit order and a reader following them can skip a row; use afterSeq()',
            E_USER_DEPRECATED
        );

        return $query->where('id', '>', $storeId)->orderBy('id');
    }

    /** Events of one type (e.g. customer.updated), in ledger order. */
    public function scopeOfType($query, string $eventType)
    {
        return $query->where('event_type', $eventType)->orderBy('seq');
    }

    public function touch($attribute = null)
    {
        throw EventStoreImmutableException::refuse('touching an event');
    }

    public function forceDelete()
    {
        throw EventStoreImmutableException::refuse('force-deleting an event');
    }

    public function delete()
    {
        throw EventStoreImmutableException::refuse('deleting an event');
    }

    public function newEloquentBuilder($query)
    {
        return new EventStoreBuilder($query);
    }
}
