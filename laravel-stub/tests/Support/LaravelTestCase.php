<?php

namespace Tests\Support;

use Illuminate\Contracts\Console\Kernel;
use Illuminate\Foundation\Application;
use Illuminate\Support\Facades\Facade;
use PHPUnit\Framework\TestCase;

/**
 * A test against a real Laravel application (Debian's php-laravel-framework) and real MariaDB
 * databases: a primary `suitex` database (with a `users` table, as SuiteX has) and an event
 * store database, both of the test's own.
 */
abstract class LaravelTestCase extends TestCase
{
    protected string $primary;

    protected string $eventStore;

    protected ?Application $app = null;

    protected function setUp(): void
    {
        parent::setUp();
        $this->primary = Harness::createDatabase('primary');
        $this->eventStore = Harness::createDatabase('es');
        $pdo = Harness::pdo($this->primary);
        $pdo->exec('CREATE TABLE users (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, email VARCHAR(191) NOT NULL)');
        $pdo->exec("INSERT INTO users (email) VALUES ('ada@example.com'), ('grace@example.com')");
    }

    protected function tearDown(): void
    {
        if ($this->app !== null) {
            $this->app->flush();
            $this->app = null;
        }
        Facade::clearResolvedInstances();
        Harness::dropDatabase($this->primary);
        Harness::dropDatabase($this->eventStore);
        parent::tearDown();
    }

    protected function env(array $extra = []): array
    {
        return Harness::env($this->primary, $this->eventStore, $extra);
    }

    /** `php artisan migrate`, as a deployment runs it; fails the test if it fails. */
    protected function migrate(): void
    {
        [$code, $out, $err] = Harness::artisan(['migrate', '--force'], Harness::migrator($this->env()));
        $this->assertSame(0, $code, "php artisan migrate failed:\n$out\n$err");
    }

    /** Boots the application in this (console) process with `$extra` environment. */
    protected function boot(array $extra = []): Application
    {
        foreach ($this->env($extra) as $k => $v) {
            putenv("$k=$v");
            $_ENV[$k] = $v;
            $_SERVER[$k] = $v;
        }
        Facade::clearResolvedInstances();
        $app = require Harness::appDir().'/bootstrap/app.php';
        $app->make(Kernel::class)->bootstrap();
        Facade::setFacadeApplication($app);

        return $this->app = $app;
    }

    /** A valid row for EventStore::create(). */
    protected function event(array $overrides = []): array
    {
        return array_merge([
            'account_id' => 42,
            'event_id' => sprintf('%08x-%04x-7%03x-%04x-%012x', random_int(0, 0xffffffff), random_int(0, 0xffff), random_int(0, 0xfff), random_int(0x8000, 0xbfff), random_int(0, 0xffffffffffff)),
            'aggregate_type' => 'customer',
            'aggregate_id' => 'C-1001',
            'event_type' => 'customer.updated',
            'payload' => ['name' => 'Zoë', 'plan' => 'pro', 'tags' => []],
            'metadata' => ['actor' => 'user:7'],
            'occurred_at' => '2026-11-26 15:24:00.123456',
        ], $overrides);
    }
}
