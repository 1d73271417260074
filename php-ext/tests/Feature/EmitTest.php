<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use SuiteX\Events\ValidationException;
use Tests\Support\Emulator;

use function SuiteX\Events\emit_event;
use function SuiteX\Events\emit_events;

final class Invoice implements \JsonSerializable
{
    public function __construct(private int $total)
    {
    }

    public function jsonSerialize(): mixed
    {
        return ['total' => $this->total, 'currency' => 'EUR'];
    }
}

/** emit_event() / emit_events() against the emulator: what arrives is what was emitted. */
final class EmitTest extends TestCase
{
    private string $subscription;

    protected function setUp(): void
    {
        $this->subscription = Emulator::createSubscription(getenv('SUITEX_EVENTS_RAW_TOPIC'));
    }

    private function event(array $overrides = []): array
    {
        return array_merge([
            'account_id' => 42,
            'aggregate_type' => 'customer',
            'aggregate_id' => 'C-1001',
            'event_type' => 'customer.updated',
            'payload' => ['name' => 'Ada'],
        ], $overrides);
    }

    public function test_a_small_event_is_published_inline_and_round_trips_exactly(): void
    {
        $payload = [
            'empty_list' => [],
            'empty_object' => new \stdClass(),
            'floats' => [0.1, 1.0, -2.5e-310, 1.7976931348623157e308, 123456789.12345678],
            'unicode' => "Zoë — 東京 — 👩🏽‍💻 — \u{0301}e",
            'nested' => ['list' => [1, 'two', null, true], 'map' => ['k' => ['deep' => false]]],
            'invoice' => new Invoice(1250),
            'int' => PHP_INT_MAX,
        ];
        $receipt = emit_event($this->event([
            'event_id' => '0190a7f2-4c1e-7b3a-9d2e-1f2a3b4c5d6e',
            'payload' => $payload,
            'metadata' => ['correlation_id' => 'req-7', 'actor' => 'user:7'],
            'occurred_at' => new \DateTimeImmutable('2026-11-26 16:24:00.123456', new \DateTimeZone('Europe/Paris')),
        ]));
        $this->assertSame(['event_id', 'message_id', 'payload_location', 'spooled'], array_keys($receipt));
        $this->assertFalse($receipt['spooled'], 'direct mode: published before emit_event returned');
        $this->assertSame('0190a7f2-4c1e-7b3a-9d2e-1f2a3b4c5d6e', $receipt['event_id']);
        $this->assertSame('inline', $receipt['payload_location']);
        $this->assertNotSame('', $receipt['message_id']);

        [$m] = Emulator::receive($this->subscription, 1);
        $this->assertSame('42:customer:C-1001', $m['ordering_key']);
        $this->assertSame('inline', $m['attributes']['payload_location']);
        $wire = json_decode($m['data'], false, 512, JSON_THROW_ON_ERROR);
        $this->assertSame('2026-11-26T15:24:00.123456Z', $wire->occurred_at, 'a DateTimeInterface becomes UTC with microseconds');
        $this->assertSame('req-7', $wire->metadata->correlation_id);
        // The payload's JSON is exactly PHP's own encoding of it: [] stays [], {} stays {},
        // floats keep every digit, unicode is intact.
        $this->assertSame(
            json_encode($payload, JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES),
            json_encode($wire->payload, JSON_PRESERVE_ZERO_FRACTION | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES)
        );
        $this->assertStringContainsString('"empty_list":[],"empty_object":{}', $m['data']);
    }

    public function test_an_oversized_event_goes_to_the_bucket_and_the_message_carries_a_reference(): void
    {
        $blob = str_repeat('ü', 200_000); // 400 KB of UTF-8
        $receipt = emit_event($this->event(['aggregate_id' => 'C-big', 'payload' => ['blob' => $blob]]));
        $this->assertSame('gcs', $receipt['payload_location']);

        [$m] = Emulator::receive($this->subscription, 1);
        $wire = json_decode($m['data'], true, 512, JSON_THROW_ON_ERROR);
        $this->assertArrayNotHasKey('payload', $wire);
        $ref = $wire['payload_ref'];
        $this->assertSame(getenv('SUITEX_EVENTS_PAYLOAD_BUCKET'), $ref['bucket']);
        $bytes = Emulator::download($ref['bucket'], $ref['object']);
        $this->assertSame($ref['size'], strlen($bytes));
        $this->assertSame($ref['sha256'], hash('sha256', $bytes));
        $this->assertSame(['blob' => $blob], json_decode($bytes, true));
        $this->assertLessThan(2048, strlen($m['data']));
    }

    /** An event whose payload is given as JSON text instead of a PHP value. */
    private function withPayloadJson(string $json): array
    {
        $event = $this->event(['aggregate_id' => 'J-1', 'payload_json' => $json]);
        unset($event['payload']);

        return $event;
    }

    public function test_payload_json_hands_over_an_encoded_document_and_a_string_payload_stays_a_string(): void
    {
        emit_event($this->withPayloadJson('{"already": ["encoded", 1.50]}'));
        emit_event($this->event(['aggregate_id' => 'J-1', 'payload' => '{"already": "encoded"}']));
        [$first, $second] = Emulator::receive($this->subscription, 2);
        // The document is parsed and sent as the same JSON value, compactly (1.50 is the number 1.5).
        $this->assertStringContainsString('"payload":{"already":["encoded",1.5]}', $first['data']);
        $this->assertStringContainsString('"payload":"{\"already\": \"encoded\"}"', $second['data']);

        $this->expectException(ValidationException::class);
        $this->expectExceptionMessage('payload_json is not valid JSON');
        emit_event($this->withPayloadJson('{"broken"'));
    }

    public function test_a_batch_keeps_order_per_aggregate_and_returns_a_receipt_per_event(): void
    {
        $events = [];
        for ($i = 0; $i < 30; $i++) {
            $events[] = $this->event(['aggregate_id' => 'B-'.($i % 3), 'payload' => ['seq' => $i]]);
        }
        $receipts = emit_events($events);
        $this->assertCount(30, $receipts);
        foreach ($receipts as $r) {
            $this->assertNull($r['error']);
            $this->assertNotEmpty($r['message_id']);
        }
        $seen = [];
        foreach (Emulator::receive($this->subscription, 30) as $m) {
            $seen[$m['ordering_key']][] = json_decode($m['data'], true)['payload']['seq'];
        }
        $this->assertCount(3, $seen);
        foreach ($seen as $key => $seqs) {
            $sorted = $seqs;
            sort($sorted);
            $this->assertSame($sorted, $seqs, "$key arrived in emission order");
        }
    }

    public function test_one_invalid_event_refuses_the_whole_batch_and_sends_nothing(): void
    {
        try {
            emit_events([$this->event(), $this->event(['aggregate_type' => 'Bad Type']), $this->event()]);
            $this->fail('the batch was accepted');
        } catch (ValidationException $e) {
            $this->assertSame("events[1].aggregate_type contains 'B' (U+0042) at character 1; allowed are a-z, 0-9, '_', '.', '-'", $e->getMessage());
        }
        $sentinel = emit_event($this->event(['payload' => 'sentinel']));
        $got = Emulator::receive($this->subscription, 1);
        $this->assertSame($sentinel['event_id'], $got[0]['attributes']['event_id'], 'nothing was published before the sentinel');
    }
}
