<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use SuiteX\Events\ValidationException;

use function SuiteX\Events\emit_event;

/** Every bad input is a ValidationException naming the field and the limit — never a crash. */
final class ValidationTest extends TestCase
{
    private function event(array $overrides = []): array
    {
        return array_merge([
            'account_id' => 42, 'aggregate_type' => 'customer', 'aggregate_id' => 'C-1',
            'event_type' => 'customer.updated', 'payload' => ['name' => 'Ada'],
        ], $overrides);
    }

    /** The SDK's bad-input corpus (sdk/tests/data/bad_envelopes.json), as PHP arrays. */
    public function corpus(): array
    {
        return require dirname(__DIR__, 3).'/sdk/tests/data/bad_envelopes.php';
    }

    public function test_the_corpus_is_large(): void
    {
        $this->assertGreaterThanOrEqual(40, count($this->corpus()));
    }

    /** @dataProvider corpus */
    public function test_corpus_case_is_refused_with_the_sdk_message(array $event, string $error): void
    {
        $this->expectException(ValidationException::class);
        $this->expectExceptionMessage($error);
        emit_event($event);
    }

    /** The payloads the ledger would alter (sdk/tests/data/exact_payloads.json), as payload_json. */
    public function inexactPayloads(): array
    {
        $cases = json_decode(file_get_contents(dirname(__DIR__, 3).'/sdk/tests/data/exact_payloads.json'), true, 512, JSON_THROW_ON_ERROR);
        $out = [];
        foreach ($cases as $c) {
            if (isset($c['field'])) {
                $out[$c['name']] = [$c['payload'], $c['field'].' '.$c['error']];
            }
        }

        return $out;
    }

    /** @dataProvider inexactPayloads */
    public function test_a_payload_the_ledger_would_alter_is_refused_naming_its_path(string $json, string $error): void
    {
        $this->expectException(ValidationException::class);
        $this->expectExceptionMessage($error);
        $event = $this->event(['payload_json' => $json]);
        unset($event['payload']);
        emit_event($event);
    }

    public function test_a_payload_array_nested_beyond_the_ledger_limit_is_refused_naming_its_path(): void
    {
        $deep = 1;
        for ($i = 0; $i < 32; $i++) {
            $deep = [$deep];
        }
        $this->expectException(ValidationException::class);
        $this->expectExceptionMessage('payload'.str_repeat('[0]', 31).' nests arrays and objects more than 31 levels deep');
        emit_event($this->event(['payload' => $deep]));
    }

    public function badValues(): array
    {
        $recursiveObject = new \stdClass();
        $recursiveObject->self = $recursiveObject;
        $recursiveArray = ['a' => 1];
        $recursiveArray['loop'] = &$recursiveArray;

        return [
            'resource' => [['payload' => ['file' => fopen('php://memory', 'r')]], 'payload.file is a resource; resources cannot be sent as JSON'],
            'closure' => [['payload' => ['callback' => fn () => 1]], 'payload.callback is a Closure; closures cannot be sent as JSON'],
            'recursive object' => [['payload' => $recursiveObject], 'payload.self refers back to itself (a stdClass inside itself)'],
            'recursive array' => [['payload' => $recursiveArray], 'nests deeper than 256 levels (is it recursive?)'],
            'invalid UTF-8 value' => [['payload' => ['name' => "Zo\xeb"]], 'payload.name is not valid UTF-8 (invalid byte at offset 2)'],
            'invalid UTF-8 aggregate_id' => [['aggregate_id' => "C-\xff"], 'aggregate_id is not valid UTF-8'],
            'NAN' => [['payload' => ['x' => NAN]], 'payload.x is NAN; JSON has no NaN or infinity'],
            'INF' => [['payload' => [1, [INF]]], 'payload[1][0] is INF; JSON has no NaN or infinity'],
            '-INF' => [['metadata' => ['ratio' => -INF]], 'metadata.ratio is -INF; JSON has no NaN or infinity'],
            'numeric event key' => [[0 => 'x'], '0 is a numeric key; an event is an array keyed by field name'],
            'object account id' => [['account_id' => new \stdClass()], 'account_id must be an integer from 1 to 18446744073709551615; got an object'],
            'float account id' => [['account_id' => 4.2], 'account_id must be an integer from 1 to 18446744073709551615; got 4.2'],
            'payload and payload_json' => [['payload_json' => '{}'], 'payload_json must not be given together with payload'],
        ];
    }

    /** @dataProvider badValues */
    public function test_bad_php_values_are_refused(array $overrides, string $message): void
    {
        try {
            emit_event($this->event($overrides));
            $this->fail('accepted');
        } catch (ValidationException $e) {
            $this->assertStringContainsString($message, $e->getMessage());
            $this->assertInstanceOf(\SuiteX\Events\Exception::class, $e);
            $this->assertInstanceOf(\Exception::class, $e);
        }
    }
}
