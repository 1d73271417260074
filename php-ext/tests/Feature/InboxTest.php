<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use SuiteX\Events\Consumer;
use SuiteX\Events\Inbox;
use SuiteX\Events\Emitter;
use Tests\Support\Emulator;

/** SuiteX\Events\Inbox (CLI only): pull, ack, nack, claim-checks resolved, poison reported. */
final class InboxTest extends TestCase
{
    private string $topic;

    private string $subscription;

    protected function setUp(): void
    {
        $this->topic = 'php-consume-'.bin2hex(random_bytes(4));
        Emulator::createTopic($this->topic);
        $this->subscription = Emulator::createSubscription($this->topic, ['ackDeadlineSeconds' => 600]);
    }

    private function options(): array
    {
        return ['SUITEX_EVENTS_RAW_TOPIC' => $this->topic, 'SUITEX_EVENTS_RAW_SUBSCRIPTION' => $this->subscription];
    }

    private static function event(string $aggregate, array $payload): array
    {
        return ['account_id' => 9, 'aggregate_type' => 'invoice', 'aggregate_id' => $aggregate, 'event_type' => 'invoice.saved', 'payload' => $payload];
    }

    /** Pulls until `n` deliveries arrived (the emulator hands out a few at a time). */
    private static function pullAll(Inbox|Consumer $consumer, int $n): array
    {
        $got = [];
        $until = microtime(true) + 30;
        while (count($got) < $n && microtime(true) < $until) {
            array_push($got, ...$consumer->pull(100, 1000));
        }

        return $got;
    }

    public function test_pulled_events_carry_their_full_payload_and_settle_explicitly(): void
    {
        $emitter = new Emitter($this->options());
        $big = ['lines' => array_fill(0, 8000, ['sku' => 'SKU-000123', 'qty' => 2, 'price' => 19.99])];
        $receipts = $emitter->emitEvents([
            self::event('I-1', ['n' => 1]),
            self::event('I-2', $big),
            self::event('I-3', ['n' => 3]),
        ]);
        $this->assertSame(['inline', 'gcs', 'inline'], array_column($receipts, 'payload_location'));

        $consumer = new Inbox($this->options());
        $deliveries = self::pullAll($consumer, 3);
        $this->assertCount(3, $deliveries);
        $byId = [];
        foreach ($deliveries as $d) {
            $this->assertNull($d['error']);
            $this->assertSame(['ack_id', 'message_id', 'delivery_attempt', 'ordering_key', 'attributes', 'data_sha256', 'event_id',
                'event', 'event_json', 'payload_json', 'metadata_json', 'error'], array_keys($d));
            $this->assertSame($d['event']['payload'], json_decode($d['payload_json'], true), 'payload_json is the payload\'s text');
            $this->assertSame($d['event']['event_id'], $d['event_id']);
            $this->assertSame($d['event'], json_decode($d['event_json'], true), 'event_json is the event\'s wire text, payload inline');
            $this->assertSame(array_intersect_key($d, array_flip(['event', 'event_json', 'payload_json', 'metadata_json'])),
                Inbox::decodeEvent($d['event_json']), 'decodeEvent reads a wire text back into the same fields');
            $byId[$d['event']['event_id']] = $d;
        }
        $bigDelivery = $byId[$receipts[1]['event_id']];
        $this->assertSame('gcs', $bigDelivery['attributes']['payload_location']);
        $this->assertSame($big, $bigDelivery['event']['payload'], 'the claim-check is resolved to the payload that was emitted');
        $this->assertSame('9:invoice:I-2', $bigDelivery['ordering_key']);
        $this->assertSame(['n' => 1], $byId[$receipts[0]['event_id']]['event']['payload']);

        // Ack two, nack one: only the nacked one comes back.
        $consumer->ack($byId[$receipts[0]['event_id']]['ack_id']);
        $consumer->ack($bigDelivery['ack_id']);
        $consumer->nack($byId[$receipts[2]['event_id']]['ack_id']);
        $again = self::pullAll($consumer, 1);
        $this->assertCount(1, $again);
        $this->assertSame($receipts[2]['event_id'], $again[0]['event']['event_id']);
        $consumer->ack($again[0]['ack_id']);
        $this->assertSame([], $consumer->pull(10, 1500), 'acked deliveries stay consumed');
    }

    public function test_a_message_that_is_not_an_event_is_reported_not_thrown(): void
    {
        $url = Emulator::pubsub().'/v1/projects/'.Emulator::$project.'/topics/'.$this->topic.':publish';
        [$status] = Emulator::request('POST', $url, ['messages' => [['data' => base64_encode('{"not":"an event"}')]]]);
        $this->assertSame(200, $status);

        $consumer = new Inbox($this->options());
        [$d] = self::pullAll($consumer, 1);
        $this->assertNull($d['event']);
        $this->assertNull($d['event_json']);
        $this->assertNull($d['event_id'], 'no envelope, no event_id attribute: no id');
        $this->assertSame(hash('sha256', '{"not":"an event"}'), $d['data_sha256'], 'the body\'s SHA-256, as published');
        $this->assertStringStartsWith('bad envelope: ', $d['error']);
        $this->assertStringContainsString('account_id', $d['error'], 'the error names the missing field');
        $consumer->ack($d['ack_id']);
    }

    public function test_an_append_span_is_given_for_a_held_delivery_and_refused_by_name_otherwise(): void
    {
        $url = Emulator::pubsub().'/v1/projects/'.Emulator::$project.'/topics/'.$this->topic.':publish';
        [$status] = Emulator::request('POST', $url, ['messages' => [['data' => base64_encode('{"not":"an event"}')]]]);
        $this->assertSame(200, $status);
        (new Emitter($this->options()))->emitEvent(self::event('S-1', ['n' => 1]));
        $inbox = new Inbox($this->options());
        $byError = [];
        foreach (self::pullAll($inbox, 2) as $d) {
            $byError[$d['error'] === null ? 'event' : 'poison'] = $d;
        }

        $span = $inbox->appendSpan($byError['event']['ack_id']);
        $this->assertFalse($span->isRecorded(), 'no OTEL_* settings: nothing is recorded');
        $span->end();
        $span->end(); // a second end does nothing
        foreach ([[$byError['poison']['ack_id'], 'poison'], ['no-such-ack-id', 'not a delivery this inbox holds']] as [$ackId, $why]) {
            try {
                $inbox->appendSpan($ackId);
                $this->fail("an append span for $why");
            } catch (\SuiteX\Events\ValidationException $e) {
                $this->assertStringStartsWith('ack_id ', $e->getMessage());
                $this->assertStringContainsString($why, $e->getMessage());
            }
        }
        $inbox->ack($byError['event']['ack_id']);
        $inbox->ack($byError['poison']['ack_id']);
    }

    public function test_decoding_an_invalid_event_text_names_the_field(): void
    {
        try {
            Inbox::decodeEvent('{"event_id":"0190a7f2-4c1e-7b3a-9d2e-1f2a3b4c5d6e","account_id":"nine","aggregate_type":"invoice",'
                .'"aggregate_id":"I-1","event_type":"invoice.created","occurred_at":"2026-12-06T10:00:00.000000Z","payload":{},"schema_version":1}');
            $this->fail('an event whose account_id is text decoded');
        } catch (\SuiteX\Events\ValidationException $e) {
            $this->assertStringContainsString('account_id', $e->getMessage());
        }
    }

    public function test_a_missing_subscription_is_a_consume_exception_naming_it(): void
    {
        $inbox = new Inbox(['SUITEX_EVENTS_RAW_SUBSCRIPTION' => 'no-such-sub-'.bin2hex(random_bytes(3))]);
        try {
            $inbox->pull(1, 0);
            $this->fail('pulled from a subscription that does not exist');
        } catch (\SuiteX\Events\ConsumeException $e) {
            $this->assertStringContainsString('no-such-sub-', $e->getMessage());
        }
    }

    public function test_the_old_consumer_name_still_works(): void
    {
        (new Emitter($this->options()))->emitEvent(self::event('I-9', ['n' => 9]));
        $consumer = new Consumer($this->options());
        [$d] = self::pullAll($consumer, 1);
        $this->assertSame(['n' => 9], $d['event']['payload']);
        $consumer->ack($d['ack_id']);
        $this->assertSame([], $consumer->pull(10, 1500));
    }
}
