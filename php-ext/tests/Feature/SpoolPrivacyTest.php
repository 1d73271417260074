<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use Tests\Support\Emulator;

/**
 * Spool mode from PHP keeps tenant data private: a spool created under `umask 022` is the
 * owner's alone, and a spool directory others can read is refused by the first emit_event()
 * with a ConfigurationException naming the path, its mode and owner, and the fix.
 */
final class SpoolPrivacyTest extends TestCase
{
    private string $parent;

    protected function setUp(): void
    {
        $this->parent = sys_get_temp_dir().'/suitex-php-spool-privacy-'.bin2hex(random_bytes(4));
        mkdir($this->parent);
    }

    protected function tearDown(): void
    {
        exec('rm -rf '.escapeshellarg($this->parent));
    }

    /** Emits one event in a new PHP process with umask 022 and the spool at `$dir`. */
    private function emitInto(string $dir): array
    {
        $script = <<<'PHP'
            umask(022);
            try {
                $r = SuiteX\Events\emit_event(['account_id' => 42, 'aggregate_type' => 'customer',
                    'aggregate_id' => 'C-1', 'event_type' => 'customer.updated', 'payload' => ['secret' => 'tenant data']]);
                echo json_encode($r);
            } catch (SuiteX\Events\ConfigurationException $e) {
                echo get_class($e), ': ', $e->getMessage();
            }
            PHP;

        return Emulator::php(['-r', $script], ['suitex_events.spool' => $dir]);
    }

    public function test_a_spool_created_by_emit_event_under_umask_022_is_private_to_its_owner(): void
    {
        $dir = "$this->parent/spool";
        [$code, $out, $err] = $this->emitInto($dir);
        $this->assertSame(0, $code, $out.$err);
        $this->assertTrue(json_decode($out, true)['spooled'], $out);
        $this->assertSame('0700', sprintf('%04o', fileperms($dir) & 07777), 'the spool directory');
        $files = array_values(array_diff(scandir($dir), ['.', '..']));
        $this->assertContains('spool.sqlite3', $files);
        foreach ($files as $file) {
            clearstatcache();
            $this->assertSame('0600', sprintf('%04o', fileperms("$dir/$file") & 07777), $file);
        }
    }

    public function test_a_spool_directory_others_can_read_is_refused_and_nothing_is_written_there(): void
    {
        foreach ([0777, 0755] as $mode) {
            $dir = sprintf('%s/spool-%o', $this->parent, $mode);
            mkdir($dir);
            chmod($dir, $mode);
            [$code, $out, $err] = $this->emitInto($dir);
            $this->assertSame(0, $code, $out.$err);
            $this->assertStringStartsWith('SuiteX\Events\ConfigurationException: ', $out);
            $this->assertStringContainsString('SUITEX_EVENTS_SPOOL names a spool directory that is not private', $out);
            $this->assertStringContainsString(sprintf('%s is mode %04o, owner root (uid 0)', $dir, $mode), $out);
            $this->assertStringContainsString("fix it with `chmod 700 $dir`", $out);
            $this->assertSame(['.', '..'], scandir($dir), 'nothing was written into the refused spool');
        }
    }
}
