<?php

// Every way Laravel offers to write the event store, by name: Eloquent (create, save,
// saveQuietly, withoutEvents, the builder's inserts) and the query builder and raw statements
// on DB::connection('event_store'). Each takes one event row; the web tier must be refused each
// one before any SQL is sent. Returned as name => callable(array $event).

use SuiteX\EventBackbone\Models\EventStore;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Schema;

$row = fn (array $e) => array_merge($e, [
    'payload' => json_encode($e['payload']),
    'metadata' => isset($e['metadata']) ? json_encode($e['metadata']) : null,
]);
$db = fn () => DB::connection('event_store');
$columns = ['account_id', 'event_id', 'aggregate_type', 'aggregate_id', 'event_type', 'payload', 'occurred_at'];
$values = fn (array $e) => array_map(fn ($c) => $row($e)[$c], $columns);
$insertSql = 'INSERT INTO event_store ('.implode(', ', $columns).') VALUES (?, ?, ?, ?, ?, ?, ?)';

return [
    'EventStore::create' => fn (array $e) => EventStore::create($e),
    'EventStore save' => fn (array $e) => (new EventStore($e))->save(),
    'EventStore saveQuietly' => fn (array $e) => (new EventStore($e))->saveQuietly(),
    'EventStore::withoutEvents' => fn (array $e) => EventStore::withoutEvents(fn () => EventStore::create($e)),
    'EventStore::insert' => fn (array $e) => EventStore::insert([$row($e)]),
    'EventStore::insertGetId' => fn (array $e) => EventStore::insertGetId($row($e)),
    'EventStore::insertUsing' => fn (array $e) => EventStore::query()->insertUsing(
        $columns,
        $db()->table('event_store')->selectRaw('account_id, UUID(), aggregate_type, aggregate_id, event_type, payload, occurred_at')
    ),
    'EventStore::updateOrInsert' => fn (array $e) => EventStore::query()->updateOrInsert(['event_id' => $e['event_id']], $row($e)),
    'EventStore::firstOrCreate' => fn (array $e) => EventStore::firstOrCreate(['event_id' => $e['event_id']], $e),
    'DB table insert' => fn (array $e) => $db()->table('event_store')->insert($row($e)),
    'DB table insertGetId' => fn (array $e) => $db()->table('event_store')->insertGetId($row($e)),
    'DB table insertOrIgnore' => fn (array $e) => $db()->table('event_store')->insertOrIgnore($row($e)),
    'DB table updateOrInsert' => fn (array $e) => $db()->table('event_store')->updateOrInsert(['event_id' => $e['event_id']], $row($e)),
    'DB table upsert' => fn (array $e) => $db()->table('event_store')->upsert([$row($e)], ['event_id'], ['event_type']),
    'DB table update' => fn (array $e) => $db()->table('event_store')->where('id', '>', 0)->update(['event_type' => 'x']),
    'DB table delete' => fn (array $e) => $db()->table('event_store')->where('id', '>', 0)->delete(),
    'DB table truncate' => fn (array $e) => $db()->table('event_store')->truncate(),
    'DB::insert' => fn (array $e) => $db()->insert($insertSql, $values($e)),
    'DB::statement' => fn (array $e) => $db()->statement($insertSql, $values($e)),
    'DB::affectingStatement' => fn (array $e) => $db()->affectingStatement($insertSql, $values($e)),
    'DB::unprepared' => fn (array $e) => $db()->unprepared("DELETE FROM event_store"),
    'DB::update' => fn (array $e) => $db()->update("UPDATE event_store SET event_type = 'x'"),
    'DB::delete' => fn (array $e) => $db()->delete('DELETE FROM event_store'),
    'Schema drop' => fn (array $e) => Schema::connection('event_store')->drop('event_store'),
];
