<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use Tests\Support\Emulator;

/** emit_event() in pcntl_fork() children of a process that had already emitted. */
final class ForkTest extends TestCase
{
    public function test_parent_and_forked_children_all_emit(): void
    {
        $subscription = Emulator::createSubscription(getenv('SUITEX_EVENTS_RAW_TOPIC'));
        [$status, $out, $err] = Emulator::php([__DIR__.'/../fixtures/fork.php', '3', '6']);
        $this->assertSame(0, $status, $out.$err);
        $run = json_decode($out, true, 512, JSON_THROW_ON_ERROR);

        $this->assertSame([0, 0, 0], $run['statuses'], 'every child exited cleanly: '.$err);
        $ids = array_column($run['receipts'], 'event_id');
        $pids = [$run['pid']];
        foreach ($run['children'] as $child) {
            $this->assertCount(6, $child['receipts']);
            foreach ($child['receipts'] as $r) {
                $this->assertNotEmpty($r['message_id']);
                $ids[] = $r['event_id'];
            }
            $pids[] = $child['pid'];
        }
        $this->assertCount(4, array_unique($pids), 'three children and the parent');
        $this->assertCount(21, array_unique($ids));

        $received = array_map(fn ($m) => $m['attributes']['event_id'], Emulator::receive($subscription, 21));
        sort($ids);
        sort($received);
        $this->assertSame($ids, $received, 'every emitted event arrived once');
    }
}
