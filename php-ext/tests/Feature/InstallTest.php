<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use Tests\Support\Emulator;

/**
 * scripts/install-extension puts the extension where PHP finds it, with an .ini enabled for the
 * CLI and php-fpm; `php --ri suitex_events` then shows the version, the mode and every setting.
 */
final class InstallTest extends TestCase
{
    public function test_the_install_script_enables_the_extension_for_cli_and_fpm(): void
    {
        $root = sys_get_temp_dir().'/suitex-install-'.bin2hex(random_bytes(4));
        $script = dirname(__DIR__, 3).'/scripts/install-extension';
        [$code, $out, $err] = Emulator::run([$script, '--so', Emulator::extensionPath(), '--root', $root], getenv(), 60);
        try {
            $this->assertSame(0, $code, $out.$err);
            $version = PHP_MAJOR_VERSION.'.'.PHP_MINOR_VERSION;
            $extDir = trim((string) shell_exec('php-config --extension-dir'));
            $this->assertFileExists("$root$extDir/suitex_events.so");
            $ini = file_get_contents("$root/etc/php/$version/mods-available/suitex_events.ini");
            $this->assertStringContainsString("\nextension=suitex_events\n", $ini);
            $this->assertStringContainsString(';suitex_events.publish_deadline =', $ini, 'every directive is listed');
            foreach (['cli', 'fpm'] as $sapi) {
                $this->assertSame('../../mods-available/suitex_events.ini', readlink("$root/etc/php/$version/$sapi/conf.d/20-suitex_events.ini"), $sapi);
            }

            // PHP as installed: its conf.d, its extension directory; nothing on the command line.
            [$code, $info, $err] = Emulator::run(['php', '-d', "extension_dir=$root$extDir", '--ri', 'suitex_events'], [
                'PATH' => getenv('PATH'),
                'PHP_INI_SCAN_DIR' => "$root/etc/php/$version/cli/conf.d",
                'SUITEX_EVENTS_PUBLISH_DEADLINE' => '7s',
            ], 30);
            $this->assertSame(0, $code, $info.$err);
            $this->assertStringContainsString('suitex_events support => enabled', $info);
            $this->assertMatchesRegularExpression('/Version => \d+\.\d+\.\d+/', $info);
            $this->assertStringContainsString('Mode => direct', $info);
            $this->assertStringContainsString('SUITEX_EVENTS_PUBLISH_DEADLINE => 7s => environment', $info);
            $this->assertStringContainsString('SUITEX_EVENTS_RAW_TOPIC => events.raw => default', $info);
        } finally {
            exec('rm -rf '.escapeshellarg($root));
        }
    }
}
