<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Facades\Events;
use PHPUnit\Framework\AssertionFailedError;
use SuiteX\Events\ValidationException;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;

/**
 * Events::fake(): records instead of emitting, asserts like Laravel's fakes, and refuses a bad
 * event exactly as the extension does — here, where the extension is not loaded.
 */
final class EventsFakeTest extends LaravelTestCase
{
    private function emitted(array $overrides = []): array
    {
        return array_merge([
            'account_id' => 42, 'aggregate_type' => 'customer', 'aggregate_id' => 'C-1',
            'event_type' => 'customer.updated', 'payload' => ['name' => 'Ada'],
        ], $overrides);
    }

    public function test_the_fake_records_and_asserts_without_the_extension(): void
    {
        $this->assertFalse(extension_loaded('suitex_events'), 'these tests run without the extension');
        $this->boot();
        $fake = Events::fake();
        Events::assertNothingEmitted();

        $receipt = Events::emit($this->emitted());
        $this->assertMatchesRegularExpression('/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/', $receipt['event_id']);
        $this->assertSame('inline', $receipt['payload_location']);
        Events::emitBatch([$this->emitted(['aggregate_id' => 'C-2']), $this->emitted(['event_type' => 'customer.created'])]);

        Events::assertEmitted('customer.updated');
        Events::assertEmitted('customer.updated', fn (array $e) => $e['aggregate_id'] === 'C-2');
        Events::assertEmittedTimes('customer.updated', 2);
        Events::assertEmittedTimes('customer.created', 1);
        Events::assertNotEmitted('customer.deleted');
        $this->assertSame(['C-1', 'C-2'], $fake->emitted('customer.updated')->pluck('aggregate_id')->all());
        $this->assertSame($receipt['event_id'], $fake->emitted()->first()['event_id']);

        foreach ([
            fn () => Events::assertEmitted('customer.deleted'),
            fn () => Events::assertEmitted('customer.updated', fn (array $e) => $e['aggregate_id'] === 'C-9'),
            fn () => Events::assertEmittedTimes('customer.updated', 3),
            fn () => Events::assertNotEmitted('customer.created'),
            fn () => Events::assertNothingEmitted(),
        ] as $i => $failing) {
            try {
                $failing();
                $this->fail("assertion $i passed on what was emitted");
            } catch (AssertionFailedError $e) {
                $this->assertStringNotContainsString("assertion $i passed", $e->getMessage());
            }
        }
    }

    public function test_emit_event_and_emit_events_are_the_facades_names_and_the_old_ones_still_work(): void
    {
        $this->boot();
        Events::fake();
        $one = Events::emitEvent($this->emitted(['aggregate_id' => 'N-1']));
        $many = Events::emitEvents([$this->emitted(['aggregate_id' => 'N-2']), $this->emitted(['aggregate_id' => 'N-3'])]);
        $old = Events::emit($this->emitted(['aggregate_id' => 'N-4']));
        $oldBatch = Events::emitBatch([$this->emitted(['aggregate_id' => 'N-5'])]);
        $this->assertCount(2, $many);
        $this->assertCount(1, $oldBatch);
        $this->assertSame(array_keys($one), array_keys($old), 'the deprecated alias returns the same receipt');
        Events::assertEmittedTimes('customer.updated', 5);
        $this->assertSame(
            ['N-1', 'N-2', 'N-3', 'N-4', 'N-5'],
            Events::emitted()->pluck('aggregate_id')->all(),
        );
        $facade = new \ReflectionClass(\SuiteX\EventBackbone\EventBackbone::class);
        foreach (['emit' => 'emitEvent', 'emitBatch' => 'emitEvents'] as $old => $new) {
            $this->assertStringContainsString("@deprecated 0.2 name: use {$new}()", (string) $facade->getMethod($old)->getDocComment());
        }
    }

    public function test_a_bad_batch_records_nothing(): void
    {
        $this->boot();
        $fake = Events::fake();
        try {
            Events::emitBatch([$this->emitted(), $this->emitted(['account_id' => 0])]);
            $this->fail('a bad batch was accepted');
        } catch (ValidationException $e) {
            $this->assertSame('account_id must be an integer from 1 to 18446744073709551615; got 0', $e->getMessage());
        }
        Events::assertNothingEmitted();
        $this->assertInstanceOf(\SuiteX\Events\Exception::class, $e);
    }

    /** The SDK's corpus of bad events (the extension's own tests run the same corpus). */
    public function corpus(): array
    {
        return require dirname(__DIR__, 3).'/sdk/tests/data/bad_envelopes.php';
    }

    /** @dataProvider corpus */
    public function test_a_bad_event_fails_with_the_extensions_message(array $event, string $error): void
    {
        $this->boot();
        Events::fake();
        try {
            Events::emit($event);
            $this->fail("accepted: $error");
        } catch (ValidationException $e) {
            $this->assertStringContainsString($error, $e->getMessage());
        }
        Events::assertNothingEmitted();
    }

    public function test_php_values_json_cannot_carry_are_refused_as_the_extension_refuses_them(): void
    {
        $this->boot();
        Events::fake();
        $self = new \stdClass();
        $self->self = $self;
        foreach ([
            [['payload' => ['file' => fopen('php://memory', 'r')]], 'payload.file is a resource; resources cannot be sent as JSON'],
            [['payload' => ['callback' => fn () => 1]], 'payload.callback is a Closure; closures cannot be sent as JSON'],
            [['payload' => $self], 'payload.self refers back to itself (a stdClass inside itself)'],
            [['payload' => ['x' => NAN]], 'payload.x is NAN; JSON has no NaN or infinity'],
            [['payload' => [1, [INF]]], 'payload[1][0] is INF; JSON has no NaN or infinity'],
            [['payload' => ['name' => "Zo\xeb"]], 'payload.name is not valid UTF-8'],
            [['account_id' => 4.2], 'account_id must be an integer from 1 to 18446744073709551615; got 4.2'],
            [['payload_json' => '{}'], 'payload_json must not be given together with payload'],
        ] as [$overrides, $message]) {
            try {
                Events::emit($this->emitted($overrides));
                $this->fail("accepted: $message");
            } catch (ValidationException $e) {
                $this->assertStringContainsString($message, $e->getMessage());
            }
        }
        // What the extension accepts, the fake accepts: payload_json, DateTimeInterface, objects.
        $receipt = Events::emit(array_diff_key($this->emitted(), ['payload' => 1]) + [
            'payload_json' => '{"a":[1,2]}',
            'occurred_at' => new \DateTimeImmutable('2026-11-26 17:24:00.5', new \DateTimeZone('Europe/Berlin')),
            'metadata' => ['actor' => 'user:7'],
        ]);
        $recorded = Events::emitted()->first();
        $this->assertSame($receipt['event_id'], $recorded['event_id']);
        $this->assertSame(['a' => [1, 2]], $recorded['payload']);
        $this->assertSame('2026-11-26T16:24:00.500000Z', $recorded['occurred_at']);
    }

    public function test_the_fake_and_the_extension_agree_on_every_corpus_case(): void
    {
        $extension = getenv('SUITEX_EVENTS_PHP_EXT');
        $this->assertNotFalse($extension, 'SUITEX_EVENTS_PHP_EXT names the built extension (scripts/test sets it)');
        $script = <<<'PHP'
        require $argv[1].'/bootstrap/autoload.php';
        $out = [];
        foreach (require $argv[2] as $name => [$event, $expected]) {
            $messages = [];
            foreach (['extension' => fn ($e) => SuiteX\Events\emit_event($e), 'fake' => fn ($e) => SuiteX\EventBackbone\Testing\EventValidator::validate($e)] as $who => $f) {
                try { $f($event); $messages[$who] = 'accepted'; } catch (SuiteX\Events\ValidationException $e) { $messages[$who] = $e->getMessage(); }
            }
            $out[$name] = $messages;
        }
        echo json_encode($out);
        PHP;
        [$code, $out, $err] = Harness::run([PHP_BINARY, '-d', "extension=$extension", '-r', $script, Harness::appDir(), dirname(__DIR__, 3).'/sdk/tests/data/bad_envelopes.php'], [
            // The extension validates before it connects anywhere; it still wants a configuration.
            'SUITEX_EVENTS_PROJECT' => 'suitex-local',
            'PUBSUB_EMULATOR_HOST' => (string) getenv('PUBSUB_EMULATOR_HOST'),
            'STORAGE_EMULATOR_HOST' => (string) getenv('STORAGE_EMULATOR_HOST'),
        ]);
        $this->assertSame(0, $code, $err);
        $cases = json_decode($out, true, 512, JSON_THROW_ON_ERROR);
        $this->assertGreaterThanOrEqual(40, count($cases));
        foreach ($cases as $name => $m) {
            $this->assertSame($m['extension'], $m['fake'], $name);
        }
    }
}
