<?php

namespace SuiteX\EventBackbone\Worker;

use Illuminate\Database\ConnectionInterface;
use Illuminate\Support\Facades\DB;

/**
 * Parked keys for `php artisan events:work` (docs/architecture.md §2.5 "Parked keys"), on the
 * same append-only tables, with the same records and the same named locks as the Rust worker
 * (sdk/src/store/parking.rs), so the two workers share parks: a key either of them parked is
 * parked for both, and either releases it.
 *
 * * A poison event on its last delivery attempt parks its key before it is nacked (Pub/Sub
 *   dead-letters it on that nack): a park record names the dead letter by event id, message id
 *   and the SHA-256 of its body.
 * * While the key is parked its later events are kept aside (`event_store_parked_events`, the
 *   event's wire text with its payload inline) and acked, never appended.
 * * When a redrive brings the dead letter back (same body), the key's oldest park is released:
 *   the dead letter and then the events kept aside are appended in their order, and the release
 *   is recorded, in one transaction — a failure leaves the key parked.
 *
 * Keeping aside and releasing are serialised by a MySQL named lock per park, held by this
 * session until its transaction has committed; the writer role needs nothing beyond INSERT and
 * SELECT.
 */
final class Parking
{
    /** Who the records of this worker name (with its database account). */
    public const RECORDED_BY = 'events:work';

    /** How long keeping aside or a release waits for a park's lock, in seconds (as in Rust). */
    private const LOCK_WAIT_SECONDS = 10;

    public function __construct(private readonly string $connection)
    {
    }

    /**
     * The open parks, oldest first, with the fields `suitex-events parked list --json` prints:
     * id, ordering_key, event_id, message_id, data_sha256, reason, recorded_by, parked_at,
     * age_seconds, parked_events.
     */
    public static function parks(ConnectionInterface $db): array
    {
        $rows = $db->select(
            "SELECT p.id, p.ordering_key, p.event_id, p.message_id, p.data_sha256, p.reason, p.recorded_by,
                DATE_FORMAT(p.recorded_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS parked_at,
                GREATEST(TIMESTAMPDIFF(SECOND, p.recorded_at, UTC_TIMESTAMP(6)), 0) AS age_seconds,
                (SELECT COUNT(*) FROM event_store_parked_events e WHERE e.park_id = p.id) AS parked_events
             FROM event_store_parking p
             WHERE p.action = 'parked' AND NOT EXISTS (SELECT 1 FROM event_store_parking r WHERE r.park_id = p.id)
             ORDER BY p.id"
        );

        return array_map(fn ($r) => [
            'id' => (int) $r->id,
            'ordering_key' => $r->ordering_key,
            'event_id' => $r->event_id,
            'message_id' => $r->message_id,
            'data_sha256' => (string) $r->data_sha256,
            'reason' => $r->reason,
            'recorded_by' => $r->recorded_by,
            'parked_at' => $r->parked_at,
            'age_seconds' => (int) $r->age_seconds,
            'parked_events' => (int) $r->parked_events,
        ], $rows);
    }

    /** The open parks by ordering key, each key's oldest first. */
    public function openParks(): array
    {
        $byKey = [];
        foreach (self::parks($this->db()) as $park) {
            $byKey[$park['ordering_key']][] = $park;
        }

        return $byKey;
    }

    /**
     * Parks the delivery's key behind it (a dead letter: nacked on its last attempt, for
     * `$reason`), behind the key's open parks in `$open` if it has any; returns the park. A park
     * of the same key and dead letter that is open already is the one returned (an earlier
     * attempt recorded it).
     */
    public function park(array $delivery, string $reason, array $open): array
    {
        $key = $delivery['ordering_key'];
        foreach ($open[$key] ?? [] as $park) {
            if ($park['data_sha256'] === $delivery['data_sha256']) {
                return $park;
            }
        }
        $db = $this->db();
        $db->insert(
            "INSERT INTO event_store_parking (ordering_key, action, event_id, message_id, data_sha256, reason, recorded_by)
             VALUES (?, 'parked', ?, ?, ?, ?, CONCAT(?, ' as ', CURRENT_USER()))",
            [$key, $delivery['event_id'], $delivery['message_id'], $delivery['data_sha256'], $reason, self::RECORDED_BY]
        );

        return ['id' => (int) $db->getPdo()->lastInsertId(), 'ordering_key' => $key, 'data_sha256' => $delivery['data_sha256']];
    }

    /**
     * Keeps the delivery's event aside behind `$park` (its key's newest open park), unless it is
     * kept there already. False when the park was released meanwhile: the event is not kept,
     * and must be stored instead.
     */
    public function keepAside(array $park, array $delivery): bool
    {
        return $this->underLock($park, function (ConnectionInterface $db) use ($park, $delivery) {
            if (self::released($db, $park)) {
                return false;
            }
            $eventId = $delivery['event']['event_id'];
            $there = $db->selectOne('SELECT id FROM event_store_parked_events WHERE park_id = ? AND event_id = ?', [$park['id'], $eventId]);
            if ($there === null) {
                $db->insert('INSERT INTO event_store_parked_events (park_id, event_id, event) VALUES (?, ?, ?)',
                    [$park['id'], $eventId, $delivery['event_json']]);
            }

            return true;
        });
    }

    /**
     * Ends `$park` because its dead letter (`$delivery`) came back: appends it and then the
     * events kept aside behind the park, in order, with `$writer`, and records the release —
     * all in one transaction. Returns the dead letter's row; null when the park was released
     * already (by another worker: read the parks again). PoisonEvent when the database refuses
     * one of the rows: nothing is released.
     */
    public function release(array $park, array $delivery, EventWriter $writer): ?Stored
    {
        return $this->underLock($park, function (ConnectionInterface $db) use ($park, $delivery, $writer) {
            if (self::released($db, $park)) {
                return null;
            }
            $db->insert(
                "INSERT INTO event_store_parking (ordering_key, action, park_id, reason, recorded_by)
                 VALUES (?, 'redriven', ?, ?, CONCAT(?, ' as ', CURRENT_USER()))",
                [$park['ordering_key'], $park['id'], 'the dead letter came back', self::RECORDED_BY]
            );
            $stored = $writer->store($delivery);
            $kept = $db->select('SELECT event_id, event FROM event_store_parked_events WHERE park_id = ? ORDER BY id', [$park['id']]);
            foreach ($kept as $row) {
                try {
                    $event = \SuiteX\Events\Inbox::decodeEvent($row->event);
                } catch (\SuiteX\Events\ValidationException $e) {
                    throw new PoisonEvent("the event {$row->event_id} kept aside behind park {$park['id']} no longer decodes: {$e->getMessage()}", 0, $e);
                }
                $writer->store($event);
            }

            return $stored;
        });
    }

    /**
     * Runs `$work` in a transaction while this session holds `$park`'s named lock (the Rust
     * worker's name for it); commits unless it throws or returns null or false.
     */
    private function underLock(array $park, callable $work): mixed
    {
        $db = $this->db();
        $name = substr("suitex_events.park.{$park['id']}.".$db->getDatabaseName(), 0, 64);
        $got = $db->selectOne('SELECT GET_LOCK(?, ?) AS got', [$name, self::LOCK_WAIT_SECONDS])->got ?? null;
        if ((int) $got !== 1) {
            throw new \RuntimeException("park {$park['id']} stayed locked for ".self::LOCK_WAIT_SECONDS.' s (a release of it is running)');
        }
        try {
            $db->beginTransaction();
            try {
                $result = $work($db);
            } catch (\Throwable $e) {
                self::quietly(fn () => $db->rollBack());
                throw $e;
            }
            if ($result === null || $result === false) {
                $db->rollBack();
            } else {
                $db->commit();
            }

            return $result;
        } finally {
            self::quietly(fn () => $db->selectOne('SELECT RELEASE_LOCK(?)', [$name]));
        }
    }

    /** Whether `$park` has ended (its release is recorded). */
    private static function released(ConnectionInterface $db, array $park): bool
    {
        return $db->selectOne('SELECT id FROM event_store_parking WHERE park_id = ?', [$park['id']]) !== null;
    }

    /** Runs `$f`, ignoring a failure (of a session that is gone: its lock and transaction went with it). */
    private static function quietly(callable $f): void
    {
        try {
            $f();
        } catch (\Throwable) {
        }
    }

    private function db(): ConnectionInterface
    {
        return DB::connection($this->connection);
    }
}
