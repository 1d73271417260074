<?php

namespace Tests\Feature;

use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;
use Tests\Support\Pipeline;

/**
 * `php artisan events:parked` reads the parking tables (migration 0004's twin) exactly as
 * `suitex-events parked list|show` does: the same keys, dead letters, events kept aside and
 * history.
 */
final class ParkedCommandTest extends LaravelTestCase
{
    private function artisan(array $args): array
    {
        [$code, $out, $err] = Harness::artisan($args, $this->env());
        $this->assertSame(0, $code, "events:parked failed:\n$out\n$err");
        $json = json_decode(trim($out), true);
        $this->assertIsArray($json, "events:parked printed no JSON:\n$out\n$err");

        return $json;
    }

    private function rust(array $args): array
    {
        $bin = Pipeline::required('SUITEX_EVENTS_BIN', 'the suitex-events binary');
        $proc = proc_open(array_merge([$bin], $args), [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, array_merge(Harness::baseEnv(), $this->env()));
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($proc), $err);
        $json = json_decode($out, true);
        $this->assertIsArray($json, "suitex-events printed no JSON:\n$out\n$err");

        return $json;
    }

    private static function withoutAge(array $parks): array
    {
        return array_map(function ($p) {
            unset($p['age_seconds']);

            return $p;
        }, $parks);
    }

    public function test_the_parked_keys_read_the_same_as_suitex_events_parked(): void
    {
        $this->migrate();
        $pdo = Harness::pdo($this->eventStore);
        // What the worker records when a dead letter parks its key, and later events arrive.
        $park = $pdo->prepare("INSERT INTO event_store_parking (ordering_key, action, event_id, message_id, data_sha256, reason, recorded_by)
            VALUES (?, 'parked', ?, ?, SHA2(?, 256), ?, 'worker as suitex_worker@%')");
        $park->execute(['42:sales_order:SO-1', '11111111-1111-4111-8111-111111111111', 'm-1', 'body', 'claim-check object is missing']);
        $parkId = (int) $pdo->lastInsertId();
        foreach ([2, 3] as $n) {
            $id = sprintf('2222222%d-2222-4222-8222-222222222222', $n);
            $event = json_encode(['event_id' => $id, 'account_id' => 42, 'aggregate_type' => 'sales_order', 'aggregate_id' => 'SO-1',
                'event_type' => 'sales_order.updated', 'occurred_at' => '2026-12-06T10:00:00.000000Z', 'payload' => ['n' => $n], 'schema_version' => 1]);
            $pdo->prepare('INSERT INTO event_store_parked_events (park_id, event_id, event) VALUES (?, ?, ?)')->execute([$parkId, $id, $event]);
        }
        // Another key, parked and released (skipped) since.
        $park->execute(['42:sales_order:SO-2', null, 'm-2', 'not json', 'bad envelope']);
        $other = (int) $pdo->lastInsertId();
        $pdo->prepare("INSERT INTO event_store_parking (ordering_key, action, park_id, reason, recorded_by) VALUES (?, 'skipped', ?, ?, ?)")
            ->execute(['42:sales_order:SO-2', $other, 'garbage from a test publisher', 'ops as root@%']);

        $parks = $this->artisan(['events:parked', '--json']);
        $this->assertCount(1, $parks, 'only the open park is listed');
        $this->assertSame('42:sales_order:SO-1', $parks[0]['ordering_key']);
        $this->assertSame(2, $parks[0]['parked_events']);
        $this->assertSame(hash('sha256', 'body'), $parks[0]['data_sha256']);
        $this->assertSame(self::withoutAge($this->rust(['parked', 'list', '--json'])), self::withoutAge($parks));

        $shown = $this->artisan(['events:parked', '42:sales_order:SO-1', '--json']);
        $this->assertSame([2, 3], array_map(fn ($e) => $e['payload']['n'], $shown['events_aside']));
        $rust = $this->rust(['parked', 'show', '42:sales_order:SO-1', '--json']);
        $this->assertSame($rust['history'], $shown['history']);
        $this->assertSame(array_column($rust['events_aside'], 'event_id'), array_column($shown['events_aside'], 'event_id'));

        $released = $this->artisan(['events:parked', '42:sales_order:SO-2', '--json']);
        $this->assertNull($released['parked']);
        $this->assertSame(['parked', 'skipped'], array_column($released['history'], 'action'));
        $this->assertSame('garbage from a test publisher', $released['history'][1]['reason']);
    }
}
