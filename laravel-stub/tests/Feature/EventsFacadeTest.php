<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\Exceptions\EventBackboneUnavailableException;
use SuiteX\EventBackbone\Facades\Events;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;

/** Events::emit() goes through the suitex_events extension, or says clearly that it is missing. */
final class EventsFacadeTest extends LaravelTestCase
{
    public function test_without_the_extension_emit_explains_what_is_missing(): void
    {
        // This PHP's settings without any suitex_events ini file, whatever this one has loaded.
        $scan = sys_get_temp_dir().'/suitex-no-ext-'.bin2hex(random_bytes(4));
        mkdir($scan);
        foreach (glob(PHP_CONFIG_FILE_SCAN_DIR.'/*.ini') as $ini) {
            if (stripos(basename($ini), 'suitex') === false) {
                copy($ini, $scan.'/'.basename($ini));
            }
        }
        [$code, $out, $err] = Harness::php(['-r', sprintf(
            'require %s; $app = require %s; $app->make(Illuminate\Contracts\Console\Kernel::class)->bootstrap();'
            .' try { SuiteX\EventBackbone\Facades\Events::emit(["account_id" => 1]); } catch (Throwable $e) { echo get_class($e), "|", $e->getMessage(); }',
            var_export(Harness::appDir().'/bootstrap/autoload.php', true),
            var_export(Harness::appDir().'/bootstrap/app.php', true)
        )], $this->env(['PHP_INI_SCAN_DIR' => $scan]));
        exec('rm -rf '.escapeshellarg($scan));
        $this->assertSame(0, $code, $out.$err);
        [$class, $message] = explode('|', $out, 2);
        $this->assertSame(EventBackboneUnavailableException::class, $class);
        $this->assertStringContainsString('The suitex_events PHP extension is not loaded', $message);
        $this->assertStringContainsString('extension=suitex_events', $message);
    }

    public function test_the_facade_resolves_to_the_emitter(): void
    {
        $this->boot();
        $this->assertInstanceOf(\SuiteX\EventBackbone\EventBackbone::class, Events::getFacadeRoot());
        $this->assertSame(function_exists('SuiteX\Events\emit_event'), Events::available());
    }
}
