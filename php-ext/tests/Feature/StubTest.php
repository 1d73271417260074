<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use SuiteX\Events\ConfigurationException;
use SuiteX\Events\ConsumeException;
use SuiteX\Events\PublishException;
use SuiteX\Events\ValidationException;
use Tests\Support\Emulator;

/** The published stubs match the extension; the exceptions behave as PHP exceptions. */
final class StubTest extends TestCase
{
    public function test_the_checked_in_stub_file_is_what_the_generator_makes_from_the_extension(): void
    {
        $stub = realpath(__DIR__.'/../../stubs/suitex_events.stub.php');
        [$status, $generated, $err] = Emulator::php([__DIR__.'/../../stubs/generate.php']);
        $this->assertSame(0, $status, $err);
        $this->assertStringContainsString('function emit_event(array $event, ?array $options = null): array', $generated);
        $this->assertSame($generated, file_get_contents($stub), "$stub is stale; regenerate it:\n"
            .'php -n -d extension=target/debug/libsuitex_events_php.so php-ext/stubs/generate.php > php-ext/stubs/suitex_events.stub.php');
    }

    public function test_the_stub_file_declares_exactly_what_the_extension_does(): void
    {
        $script = __DIR__.'/../fixtures/signatures.php';
        [$status, $fromExtension, $err] = Emulator::php([$script]);
        $this->assertSame(0, $status, $err);
        $proc = Emulator::run([PHP_BINARY, '-n', $script, realpath(__DIR__.'/../../stubs/suitex_events.stub.php')], getenv());
        $this->assertSame(0, $proc[0], $proc[2]);

        $extension = json_decode($fromExtension, true, 512, JSON_THROW_ON_ERROR);
        $this->assertCount(2, $extension['functions']);
        $this->assertCount(9, $extension['classes'], 'CLI has the Inbox, its AppendSpan and the old name of the Inbox, Consumer, too');
        $this->assertSame($extension, json_decode($proc[1], true, 512, JSON_THROW_ON_ERROR), 'php-ext/stubs/suitex_events.stub.php has drifted');
    }

    public function test_every_emit_side_setting_of_the_sdk_is_a_directive_and_nothing_else_is(): void
    {
        // The SDK's one list of settings, as the command line prints it.
        $bin = getenv('SUITEX_EVENTS_BIN');
        $this->assertNotFalse($bin, 'SUITEX_EVENTS_BIN names the suitex-events binary');
        [$status, $out, $err] = Emulator::run([$bin, 'settings', '--json'], getenv());
        $this->assertSame(0, $status, $err);
        $fromSdk = [];
        foreach (json_decode($out, true, 512, JSON_THROW_ON_ERROR) as $setting) {
            if ($setting['php_directive'] !== null) {
                $fromSdk[] = $setting['php_directive'];
            }
        }
        $directives = array_keys((new \ReflectionExtension('suitex_events'))->getINIEntries());
        sort($fromSdk);
        sort($directives);
        $this->assertNotEmpty($fromSdk);
        $this->assertSame($fromSdk, $directives);
    }

    public function test_the_exceptions_are_ordinary_php_exceptions(): void
    {
        foreach ([ValidationException::class, ConfigurationException::class, PublishException::class, ConsumeException::class] as $class) {
            $previous = new \RuntimeException('cause');
            $e = new $class('message', 7, $previous);
            $this->assertInstanceOf(\SuiteX\Events\Exception::class, $e);
            $this->assertInstanceOf(\Exception::class, $e);
            $this->assertSame(['message', 7, $previous], [$e->getMessage(), $e->getCode(), $e->getPrevious()]);
            $this->assertEquals($e->getMessage(), unserialize(serialize($e))->getMessage());
        }
    }
}
