<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use SuiteX\EventBackbone\Config\Duration;

/**
 * `php artisan events:work` reads the Rust worker's settings: the same names, the same duration
 * format and the same defaults as the SDK's one settings list (sdk/src/settings.rs, printed by
 * `suitex-events settings --json`).
 */
final class WorkerSettingsTest extends TestCase
{
    /** @return array<string,string> setting => default, from the SDK's settings list (`suitex-events settings --json`) */
    private static function rustDefaults(): array
    {
        $bin = getenv('SUITEX_EVENTS_BIN') ?: dirname(__DIR__, 3).'/target/debug/suitex-events';
        self::assertFileExists($bin, 'build the CLI first (cargo build), or set SUITEX_EVENTS_BIN');
        $out = shell_exec(escapeshellarg($bin).' settings --json');
        $list = json_decode((string) $out, true, 512, JSON_THROW_ON_ERROR);

        return array_column(array_filter($list, fn ($s) => str_starts_with($s['name'], 'SUITEX_WORKER_')), 'default', 'name');
    }

    public function test_the_php_worker_reads_the_rust_workers_settings_with_their_defaults(): void
    {
        $config = file_get_contents(dirname(__DIR__, 2).'/config/suitex-events.php');
        preg_match_all("/env\\('(SUITEX_WORKER_\\w+)', (?:env\\('\\w+', )?'?([^')]+)'?\\)/", $config, $m, PREG_SET_ORDER);
        $php = array_column($m, 2, 1);
        $this->assertSame(['SUITEX_WORKER_MAX_DELIVERY_ATTEMPTS', 'SUITEX_WORKER_BACKOFF_MIN', 'SUITEX_WORKER_BACKOFF_MAX'], array_keys($php));
        $rust = self::rustDefaults();
        foreach ($php as $setting => $default) {
            $this->assertArrayHasKey($setting, $rust, "$setting is in the SDK's settings list");
            $this->assertSame($rust[$setting], $default, "$setting has the Rust worker's default");
        }
    }

    public function test_durations_read_as_the_sdk_reads_them_and_a_bad_one_names_its_setting(): void
    {
        $this->assertSame(200, Duration::milliseconds('200ms', 'S'));
        $this->assertSame(30_000, Duration::milliseconds('30s', 'S'));
        $this->assertSame(90_000, Duration::milliseconds('1m 30s', 'S'));
        $this->assertSame(250, Duration::milliseconds('250', 'S'), 'a bare number is milliseconds');
        $this->assertSame(100, Duration::milliseconds(100, 'S'));
        $this->expectExceptionMessage('SUITEX_WORKER_BACKOFF_MAX is "soon"; expected a duration such as 200ms, 30s or 2m');
        Duration::milliseconds('soon', 'SUITEX_WORKER_BACKOFF_MAX');
    }
}
