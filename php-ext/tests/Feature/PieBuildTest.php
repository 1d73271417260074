<?php

namespace Tests\Feature;

use PHPUnit\Framework\TestCase;
use Tests\Support\Emulator;

/**
 * The repository is a PIE package (composer.json of type php-ext, build path php-ext/): the
 * steps PIE runs — phpize, configure with the package's options, make, make install — build the
 * extension through cargo and install a loadable suitex_events.so.
 */
final class PieBuildTest extends TestCase
{
    public function test_phpize_configure_make_install_builds_a_loadable_extension(): void
    {
        $repo = dirname(__DIR__, 3);
        $package = json_decode(file_get_contents("$repo/composer.json"), true, 512, JSON_THROW_ON_ERROR);
        $this->assertSame('php-ext', $package['type']);
        $this->assertSame('suitex_events', $package['php-ext']['extension-name']);
        $this->assertSame('php-ext', $package['php-ext']['build-path']);
        $m4 = file_get_contents("$repo/php-ext/config.m4");
        foreach ($package['php-ext']['configure-options'] as $option) {
            $this->assertStringContainsString('--'.$option['name'], $m4, 'each advertised option is one configure knows');
        }

        // phpize writes into the directory it runs in (and its --clean deletes tests/*.php), so
        // the build files are copied out and the workspace named explicitly.
        $build = sys_get_temp_dir().'/suitex-pie-'.bin2hex(random_bytes(4));
        mkdir("$build/src", 0777, true);
        foreach (['config.m4', 'Makefile.frag'] as $f) {
            copy("$repo/php-ext/$f", "$build/src/$f");
        }
        $env = ['PATH' => getenv('PATH').':'.getenv('HOME').'/.cargo/bin', 'HOME' => (string) getenv('HOME')];
        try {
            foreach ([
                [['phpize'], "$build/src"],
                [["$build/src/configure", '--with-suitex-events-profile=debug', "--with-suitex-events-workspace=$repo"], $build],
                [['make'], $build],
                [['make', 'install', "INSTALL_ROOT=$build/root"], $build],
            ] as [$cmd, $dir]) {
                [$code, $out, $err] = Emulator::run(['sh', '-c', 'cd "$0" && exec "$@"', $dir, ...$cmd], $env, 600);
                $this->assertSame(0, $code, implode(' ', $cmd).":\n$out\n$err");
            }
            $extDir = trim((string) shell_exec('php-config --extension-dir'));
            $so = "$build/root$extDir/suitex_events.so";
            $this->assertFileExists($so);
            [$code, $info, $err] = Emulator::run(['php', '-n', '-d', "extension=$so", '--ri', 'suitex_events'], $env, 30);
            $this->assertSame(0, $code, $err);
            $this->assertStringContainsString('suitex_events support => enabled', $info);
        } finally {
            exec('rm -rf '.escapeshellarg($build));
        }
    }
}
