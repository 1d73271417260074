<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use SuiteX\Events\ConfigurationException;
use SuiteX\Events\Emitter;
use SuiteX\Events\PublishException;
use Tests\Support\Emulator;

/** The Emitter class, configuration from options, php.ini and the environment. */
final class EmitterTest extends TestCase
{
    private const EVENT = ['account_id' => 7, 'aggregate_type' => 'order', 'aggregate_id' => 'O-1', 'event_type' => 'order.placed', 'payload' => []];

    public function test_options_override_the_environment(): void
    {
        $topic = 'php-other-'.bin2hex(random_bytes(4));
        Emulator::createTopic($topic);
        $sub = Emulator::createSubscription($topic);
        $emitter = new Emitter(['SUITEX_EVENTS_RAW_TOPIC' => $topic, 'SUITEX_EVENTS_PUBLISH_DEADLINE' => 5000]);
        $receipt = $emitter->emitEvent(self::EVENT);
        [$m] = Emulator::receive($sub, 1);
        $this->assertSame($receipt['event_id'], $m['attributes']['event_id']);
        $batch = $emitter->emitEvents([self::EVENT, self::EVENT]);
        $this->assertCount(2, $batch);
        $this->assertCount(2, Emulator::receive($sub, 2));
        // The names of 0.1 still work.
        $old = $emitter->emit(self::EVENT);
        $this->assertCount(1, $emitter->emitBatch([self::EVENT]));
        $this->assertContains($old['event_id'], array_map(fn ($m) => $m['attributes']['event_id'], Emulator::receive($sub, 2)));
    }

    public function test_a_traceparent_option_is_carried_in_the_attributes_and_the_envelope_and_a_bad_one_is_refused_by_name(): void
    {
        $topic = 'php-trace-'.bin2hex(random_bytes(4));
        Emulator::createTopic($topic);
        $sub = Emulator::createSubscription($topic);
        $emitter = new Emitter(['SUITEX_EVENTS_RAW_TOPIC' => $topic]);
        $tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
        // No OTEL_* here: nothing is recorded, so the context is carried exactly as given.
        $one = $emitter->emitEvent(self::EVENT, ['traceparent' => $tp, 'tracestate' => 'rojo=00f067aa0ba902b7']);
        $many = $emitter->emitEvents([self::EVENT, self::EVENT], ['traceparent' => $tp]);
        $own = array_merge(self::EVENT, ['metadata' => ['traceparent' => '00-11111111111111111111111111111111-2222222222222222-00']]);
        $kept = $emitter->emitEvent($own, ['traceparent' => $tp]);
        $plain = $emitter->emitEvent(self::EVENT);
        $got = [];
        foreach (Emulator::receive($sub, 5) as $m) {
            $got[$m['attributes']['event_id']] = $m;
        }
        $m = $got[$one['event_id']];
        $this->assertSame($tp, $m['attributes']['googclient_traceparent']);
        $this->assertSame('rojo=00f067aa0ba902b7', $m['attributes']['googclient_tracestate']);
        $this->assertSame(['traceparent' => $tp, 'tracestate' => 'rojo=00f067aa0ba902b7'], json_decode($m['data'], true)['metadata']);
        $this->assertSame('00-11111111111111111111111111111111-2222222222222222-00', $got[$kept['event_id']]['attributes']['googclient_traceparent'], "the event's own context wins over the call's");
        $this->assertArrayNotHasKey('googclient_traceparent', $got[$plain['event_id']]['attributes']);
        $this->assertCount(5, $got);
        $this->assertSame([$tp, $tp], array_map(fn ($r) => $got[$r['event_id']]['attributes']['googclient_traceparent'], $many));

        foreach ([
            [['traceparent' => '00-zz-01'], 'options.traceparent', 'dash-separated parts'],
            [['traceparent' => '00-00000000000000000000000000000000-b7ad6b7169203331-01'], 'options.traceparent', 'all-zero trace id'],
            [['tracestate' => 'a=b'], 'options.tracestate', 'without options.traceparent'],
            [['trace_parent' => $tp], 'options.trace_parent', 'the options are traceparent, tracestate'],
            [['traceparent' => 7], 'options.traceparent', 'must be a string'],
        ] as [$options, $field, $says]) {
            try {
                $emitter->emitEvent(self::EVENT, $options);
                $this->fail("accepted $field");
            } catch (\SuiteX\Events\ValidationException $e) {
                $this->assertStringStartsWith($field, $e->getMessage());
                $this->assertStringContainsString($says, $e->getMessage());
            }
        }
        $this->expectException(\SuiteX\Events\ValidationException::class);
        $this->expectExceptionMessage('metadata.traceparent');
        $emitter->emitEvent(array_merge(self::EVENT, ['metadata' => ['traceparent' => 'not one']]));
    }

    public function test_bad_options_are_configuration_errors_naming_the_setting(): void
    {
        foreach ([
            [['SUITEX_EVENTS_OFFLOAD_THRESHOLD' => 'lots'], 'SUITEX_EVENTS_OFFLOAD_THRESHOLD is "lots"; expected a size such as 262144, 256KiB or 32MiB'],
            [['SUITEX_EVENTS_TOPIC' => 'x'], 'SUITEX_EVENTS_TOPIC is not a setting; the settings are SUITEX_EVENTS_PROJECT'],
            [['SUITEX_EVENTS_PUBLISH_DEADLINE' => ['5s']], 'SUITEX_EVENTS_PUBLISH_DEADLINE must be a string or an integer'],
            [['SUITEX_EVENTS_MAX_PAYLOAD' => 1024], 'max_payload is 1024 bytes, below the offload threshold of 262144 bytes'],
        ] as [$options, $message]) {
            try {
                new Emitter($options);
                $this->fail('accepted '.json_encode($options));
            } catch (ConfigurationException $e) {
                $this->assertStringContainsString($message, $e->getMessage());
            }
        }
    }

    public function test_an_unreachable_pubsub_is_a_publish_exception_within_the_deadline(): void
    {
        $emitter = new Emitter(['PUBSUB_EMULATOR_HOST' => '127.0.0.1:1', 'SUITEX_EVENTS_PUBLISH_DEADLINE' => '2s']);
        $started = microtime(true);
        try {
            $emitter->emitEvent(self::EVENT);
            $this->fail('published to nowhere');
        } catch (PublishException $e) {
            $this->assertStringContainsString('topics/'.getenv('SUITEX_EVENTS_RAW_TOPIC'), $e->getMessage());
        }
        $this->assertLessThan(8, microtime(true) - $started, 'the call returned at its deadline');
    }

    public function test_php_ini_directives_win_over_the_environment(): void
    {
        $topic = 'php-ini-'.bin2hex(random_bytes(4));
        Emulator::createTopic($topic);
        $sub = Emulator::createSubscription($topic);
        $script = 'echo json_encode(SuiteX\Events\emit_event('.var_export(self::EVENT, true).'));';
        [$status, $out, $err] = Emulator::php(['-r', $script], ['suitex_events.raw_topic' => $topic]);
        $this->assertSame(0, $status, $out.$err);
        $receipt = json_decode($out, true);
        [$m] = Emulator::receive($sub, 1);
        $this->assertSame($receipt['event_id'], $m['attributes']['event_id'], 'the directive chose the topic, not SUITEX_EVENTS_RAW_TOPIC');
        $this->assertSame('', ini_get('suitex_events.raw_topic'), 'every setting has a directive');
        foreach (['project', 'payload_bucket', 'offload_threshold', 'max_payload', 'publish_deadline', 'pubsub_emulator_host', 'storage_emulator_host'] as $d) {
            $this->assertNotFalse(ini_get("suitex_events.$d"), "suitex_events.$d is registered");
        }
    }

    public function test_the_web_tier_cannot_change_any_directive_at_run_time(): void
    {
        // PHP_INI_SYSTEM: php.ini (or the pool's php_admin_value) decides; a request cannot
        // point the extension at another endpoint, topic, bucket or credential.
        $directives = array_keys((new \ReflectionExtension('suitex_events'))->getINIEntries());
        $this->assertNotEmpty($directives);
        foreach ($directives as $d) {
            $before = ini_get($d);
            $this->assertFalse(@ini_set($d, 'attacker.example:443'), "ini_set($d) is refused");
            $this->assertSame($before, ini_get($d), "$d is unchanged");
            $entry = ini_get_all('suitex_events')[$d];
            $this->assertSame(INI_SYSTEM, $entry['access'], "$d is PHP_INI_SYSTEM");
        }
        // Read by nothing (Application Default Credentials read the environment only), so
        // not offered: under php-fpm with clear_env = yes, the pool passes it with env[…].
        $this->assertFalse(ini_get('suitex_events.google_application_credentials'));
    }
}
