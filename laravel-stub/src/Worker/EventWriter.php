<?php

namespace SuiteX\EventBackbone\Worker;

use Illuminate\Support\Carbon;
use SuiteX\EventBackbone\Casts\JsonText;
use SuiteX\EventBackbone\Models\EventStore;

/**
 * Writes one delivered event with EventStore::create() on the `event_store` connection
 * (writer role), idempotently: an event_id stored already *as the same event* is a success
 * with the stored row's id; stored as another event it is poison.
 *
 * Throws PoisonEvent for what is wrong with the event itself; any other exception is a failure
 * of the database, to be retried (DatabaseErrors says which is which).
 */
final class EventWriter
{
    /**
     * @param  array  $delivery  one entry of SuiteX\Events\Inbox::pull(): 'event' (the
     *                           envelope, payload inline), 'payload_json', 'metadata_json'
     */
    public function store(array $delivery): Stored
    {
        $event = $delivery['event'];
        try {
            $row = EventStore::create([
                'event_id' => $event['event_id'],
                'account_id' => $event['account_id'],
                'aggregate_type' => $event['aggregate_type'],
                'aggregate_id' => $event['aggregate_id'],
                'event_type' => $event['event_type'],
                'payload' => new JsonText($delivery['payload_json']),
                'metadata' => $delivery['metadata_json'] === null ? null : new JsonText($delivery['metadata_json']),
                // The envelope's RFC 3339 UTC time, to the column's DATETIME(6).
                'occurred_at' => Carbon::parse($event['occurred_at'])->utc()->format('Y-m-d H:i:s.u'),
            ]);

            return new Stored((int) $row->getKey(), false);
        } catch (\PDOException $e) {
            $code = DatabaseErrors::code($e);
            switch (DatabaseErrors::classify($code)) {
                case DatabaseErrors::DUPLICATE:
                    return $this->existing($delivery) ?? throw $e;
                case DatabaseErrors::ROW_DATA:
                    throw new PoisonEvent("the database refuses the row of event {$event['event_id']} ({$code}: ".self::firstLine($e).')', 0, $e);
                default:
                    throw $e;
            }
        }
    }

    /**
     * The stored row of the delivery's event_id when it is the same event (null: none is
     * visible, e.g. a racing insert not committed yet — retry); PoisonEvent when it is another.
     * Compared like the Rust worker: tenant, aggregate, type and payload (as JSON, since MySQL 8
     * stores a normalized document); metadata and times are not.
     */
    private function existing(array $delivery): ?Stored
    {
        $event = $delivery['event'];
        $stored = EventStore::query()->where('event_id', $event['event_id'])->first();
        if ($stored === null) {
            return null;
        }
        foreach (['account_id', 'aggregate_type', 'aggregate_id', 'event_type'] as $field) {
            if ((string) $stored->getRawOriginal($field) !== (string) $event[$field]) {
                throw self::conflict($event['event_id'], (int) $stored->getKey(), $field);
            }
        }
        $text = (string) $stored->getRawOriginal('payload');
        $ours = self::canonical($delivery['payload_json']);
        if ($text !== $delivery['payload_json'] && ($ours === null || self::canonical($text) !== $ours)) {
            throw self::conflict($event['event_id'], (int) $stored->getKey(), 'payload');
        }

        return new Stored((int) $stored->getKey(), true);
    }

    private static function conflict(string $eventId, int $storeId, string $what): PoisonEvent
    {
        return new PoisonEvent("event_id {$eventId} is already stored (store id {$storeId}) with a different {$what}");
    }

    /** A JSON text with object keys sorted and no insignificant whitespace, for comparing. */
    private static function canonical(string $json): ?string
    {
        try {
            $sort = function ($v) use (&$sort) {
                if ($v instanceof \stdClass) {
                    $v = get_object_vars($v);
                    ksort($v, SORT_STRING);

                    return (object) array_map($sort, $v);
                }

                return is_array($v) ? array_map($sort, $v) : $v;
            };

            return json_encode($sort(json_decode($json, false, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING)), JSON_THROW_ON_ERROR | JSON_PRESERVE_ZERO_FRACTION);
        } catch (\JsonException) {
            return null;
        }
    }

    private static function firstLine(\Throwable $e): string
    {
        return strtok($e->getMessage(), "\n") ?: get_class($e);
    }
}
