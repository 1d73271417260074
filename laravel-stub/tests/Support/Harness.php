<?php

namespace Tests\Support;

use PDO;
use RuntimeException;

/**
 * Builds the application the tests run, as a SuiteX engineer installs the package: the smallest
 * Laravel 8 application (tests/harness, Laravel from Debian's php-laravel-framework) in a
 * temporary directory, `composer require` of this package through a Composer path repository
 * (offline: Packagist is off), and the one file the application edits by hand,
 * config/database.php with its `event_store` connection. The provider and the `Events` alias
 * come from Laravel's package auto-discovery, not from config/app.php. Also: per-test databases
 * on the MariaDB test server, and `php artisan` runs.
 */
final class Harness
{
    private static ?string $appDir = null;

    /** The composed application's directory (made once per run). */
    public static function appDir(): string
    {
        if (self::$appDir === null) {
            $stub = dirname(__DIR__, 2);
            $dir = sys_get_temp_dir().'/suitex-laravel-'.bin2hex(random_bytes(6));
            self::copyTree($stub.'/tests/harness', $dir);
            copy($stub.'/config/database.php', $dir.'/config/database.php');
            self::$appDir = $dir;
            register_shutdown_function(fn () => self::removeTree($dir));
            self::composerRequire($dir, $stub);
        }

        return self::$appDir;
    }

    /**
     * `composer require suitex/event-backbone` into `$dir` from the path repository `$package`
     * (copied, not linked), with Packagist off. The extension need not be loaded to install (the
     * tests load it where they use it), so its platform requirement is waived here only.
     */
    public static function composerRequire(string $dir, string $package): void
    {
        $composer = trim((string) shell_exec('command -v composer'));
        if ($composer === '') {
            throw new RuntimeException('composer is not installed (Debian package composer; .ci/run installs it)');
        }
        file_put_contents("$dir/composer.json", json_encode([
            'name' => 'suitex/harness',
            'type' => 'project',
            'repositories' => [
                ['packagist.org' => false],
                ['type' => 'path', 'url' => $package, 'options' => ['symlink' => false]],
            ],
            'require' => new \stdClass(),
            'autoload' => ['psr-4' => ['App\\' => 'app/']],
            'minimum-stability' => 'dev',
            'prefer-stable' => true,
        ], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES));
        $home = "$dir/.composer-home";
        [$code, $out, $err] = self::run([PHP_BINARY, $composer, 'require', 'suitex/event-backbone:*', '--working-dir='.$dir,
            '--no-interaction', '--no-progress', '--ignore-platform-req=ext-suitex_events'], [
            'COMPOSER_HOME' => $home, 'COMPOSER_CACHE_DIR' => "$home/cache", 'COMPOSER_ALLOW_SUPERUSER' => '1',
        ]);
        if ($code !== 0) {
            throw new RuntimeException("composer require failed:\n$out\n$err");
        }
    }

    /** Loads the composed application's Composer autoloader (the package, App\). */
    public static function registerAppAutoloader(): void
    {
        require_once self::appDir().'/vendor/autoload.php';
    }

    /** host, port, user, password of the MariaDB test server (SUITEX_TEST_MYSQL_URL). */
    public static function server(): array
    {
        $url = getenv('SUITEX_TEST_MYSQL_URL');
        if ($url === false || $url === '') {
            throw new RuntimeException(
                'SUITEX_TEST_MYSQL_URL is not set. Start the local services and export their addresses: '
                .'scripts/services start && eval "$(scripts/services env)" (scripts/test does both).'
            );
        }
        $p = parse_url($url);

        return [$p['host'] ?? '127.0.0.1', (int) ($p['port'] ?? 3306), $p['user'] ?? 'root', $p['pass'] ?? ''];
    }

    public static function pdo(?string $database = null, ?int $port = null): PDO
    {
        [$host, $defaultPort, $user, $password] = self::server();
        $dsn = "mysql:host={$host};port=".($port ?? $defaultPort).($database ? ";dbname={$database}" : '');

        return new PDO($dsn, $user, $password, [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    }

    /**
     * The sessions of the database account bound as its one parameter, never the listing's own:
     * what a DBA ends so that a REVOKE or a new password bites. Inside `event_store`'s triggers a
     * session runs as their definer, and information_schema.processlist shows what it runs now
     * (the definer as its user), so an appending session is also found as a busy session of the
     * definer (the migrator: root here, whose own sessions are idle meanwhile). The Rust tests'
     * query (tests/support: SESSIONS_OF_ACCOUNT), which they prove on a session held there; a
     * test here keeps the two the same.
     */
    public const SESSIONS_OF_ACCOUNT = 'SELECT CAST(id AS SIGNED) FROM information_schema.processlist '
        ."WHERE id <> CONNECTION_ID() AND (user = ? OR (command <> 'Sleep' AND user IN "
        ."(SELECT SUBSTRING_INDEX(definer, '@', 1) FROM information_schema.triggers WHERE event_object_table = 'event_store')))";

    /** Ends every session of `$account` from `$root` (see SESSIONS_OF_ACCOUNT); how many it ended. */
    public static function killSessionsOf(PDO $root, string $account): int
    {
        $list = $root->prepare(self::SESSIONS_OF_ACCOUNT);
        $list->execute([$account]);
        $killed = 0;
        foreach ($list->fetchAll(PDO::FETCH_COLUMN) as $id) {
            try {
                $root->exec('KILL CONNECTION '.(int) $id);
                $killed++;
            } catch (\PDOException $e) {
                // 1094 Unknown thread id: it ended between the listing and its KILL.
                if (($e->errorInfo[1] ?? null) !== 1094) {
                    throw $e;
                }
            }
        }

        return $killed;
    }

    public static function createDatabase(string $prefix, ?int $port = null): string
    {
        $name = 't_'.$prefix.'_'.bin2hex(random_bytes(5));
        self::pdo(null, $port)->exec("CREATE DATABASE `{$name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");

        return $name;
    }

    public static function dropDatabase(string $name, ?int $port = null): void
    {
        self::pdo(null, $port)->exec("DROP DATABASE IF EXISTS `{$name}`");
    }

    /** The environment of the application: primary `mysql` and `event_store` connections. */
    public static function env(string $primary, string $eventStore, array $extra = []): array
    {
        [$host, $port, $user, $password] = self::server();

        return array_merge([
            'APP_ENV' => 'testing',
            'DB_CONNECTION' => 'mysql',
            'DB_HOST' => $host,
            'DB_PORT' => (string) $port,
            'DB_DATABASE' => $primary,
            'DB_USERNAME' => $user,
            'DB_PASSWORD' => $password,
            'DB_EVENT_STORE_HOST' => $host,
            'DB_EVENT_STORE_PORT' => (string) $port,
            'DB_EVENT_STORE_DATABASE' => $eventStore,
            'DB_EVENT_STORE_USERNAME' => $user,
            'DB_EVENT_STORE_PASSWORD' => $password,
            'DB_EVENT_STORE_SSL_MODE' => 'disabled',
            // The tests mostly play the worker; the web tier's tests ask for the reader role.
            'DB_EVENT_STORE_ROLE' => 'writer',
        ], $extra);
    }

    /** `$env` for migrations: the event_store connection with the migrator role. */
    public static function migrator(array $env): array
    {
        return array_merge($env, ['DB_EVENT_STORE_ROLE' => 'migrator']);
    }

    /**
     * Runs a PHP script (relative to the application, e.g. `artisan`) with `$env` and returns
     * [exit code, stdout, stderr].
     */
    public static function php(array $args, array $env, ?string $cwd = null): array
    {
        return self::run(array_merge([PHP_BINARY], $args), $env, $cwd ?? self::appDir());
    }

    /**
     * Runs a program (in `$cwd`, if given) with exactly `$env` plus baseEnv() and returns
     * [exit code, stdout, stderr].
     */
    public static function run(array $cmd, array $env, ?string $cwd = null): array
    {
        $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, $cwd, array_merge(self::baseEnv(), $env));
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);

        return [proc_close($proc), $out, $err];
    }

    public static function freePort(): int
    {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
        fclose($server);

        return $port;
    }

    public static function artisan(array $args, array $env): array
    {
        return self::php(array_merge(['artisan'], $args, ['--no-interaction']), $env);
    }

    /** What every child process inherits: PATH and the PHP settings, nothing from the tests. */
    public static function baseEnv(): array
    {
        return array_filter(['PATH' => getenv('PATH'), 'PHPRC' => getenv('PHPRC'), 'PHP_INI_SCAN_DIR' => getenv('PHP_INI_SCAN_DIR')], fn ($v) => $v !== false);
    }

    /** Tables and their row counts, to show a database is unchanged. */
    public static function snapshot(string $database, ?int $port = null): array
    {
        $pdo = self::pdo($database, $port);
        $out = [];
        foreach ($pdo->query('SHOW TABLES')->fetchAll(PDO::FETCH_COLUMN) as $table) {
            $out[$table] = (int) $pdo->query("SELECT COUNT(*) FROM `{$table}`")->fetchColumn();
        }
        ksort($out);

        return $out;
    }

    private static function copyTree(string $from, string $to): void
    {
        if (! is_dir($to)) {
            mkdir($to, 0777, true);
        }
        foreach (scandir($from) as $entry) {
            if ($entry === '.' || $entry === '..') {
                continue;
            }
            is_dir("$from/$entry") ? self::copyTree("$from/$entry", "$to/$entry") : copy("$from/$entry", "$to/$entry");
        }
    }

    private static function removeTree(string $dir): void
    {
        if (! is_dir($dir)) {
            return;
        }
        foreach (scandir($dir) as $entry) {
            if ($entry !== '.' && $entry !== '..') {
                // A symbolic link (Composer's path repository links the package) is removed,
                // never followed: what it points at is not the tree's to delete.
                is_dir("$dir/$entry") && ! is_link("$dir/$entry") ? self::removeTree("$dir/$entry") : unlink("$dir/$entry");
            }
        }
        rmdir($dir);
    }
}
