<?php

namespace Tests\Feature;

use SuiteX\EventBackbone\EventBackboneServiceProvider;
use SuiteX\EventBackbone\Facades\Events;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;

/**
 * The package installs like any Laravel package: required through Composer (a path repository,
 * offline), its provider and the Events alias registered by auto-discovery, its config
 * publishable, its migration run by `php artisan migrate` without being copied.
 */
final class PackageTest extends LaravelTestCase
{
    public function test_composer_installs_it_and_auto_discovery_registers_provider_and_alias(): void
    {
        $app = Harness::appDir();
        $this->assertFileExists("$app/vendor/suitex/event-backbone/composer.json", 'installed by composer require');
        $this->assertFalse(is_link("$app/vendor/suitex/event-backbone"), 'a copy, as from a registry');
        $configured = require "$app/config/app.php";
        $this->assertNotContains(EventBackboneServiceProvider::class, $configured['providers'], 'not registered by hand');
        $this->assertArrayNotHasKey('Events', $configured['aliases']);

        $this->boot();
        $this->assertNotEmpty($this->app->getProviders(EventBackboneServiceProvider::class), 'auto-discovered');
        $manifest = require "$app/bootstrap/cache/packages.php";
        $this->assertSame([EventBackboneServiceProvider::class], $manifest['suitex/event-backbone']['providers']);
        $this->assertTrue(class_exists('Events'), 'the alias is registered');
        $this->assertInstanceOf(\SuiteX\EventBackbone\EventBackbone::class, \Events::getFacadeRoot());
        $this->assertSame(Events::getFacadeRoot(), \Events::getFacadeRoot());
        $this->assertSame('event_store', config('suitex-events.connection'), 'the package config is merged');
    }

    public function test_artisan_publishes_the_config_and_migrates_with_the_packages_migration(): void
    {
        $app = Harness::appDir();
        $this->assertSame([], glob("$app/database/migrations/*.php") ?: [], 'the application has no copy of the migration');
        [$code, $out, $err] = Harness::artisan(['vendor:publish', '--tag=suitex-events-config'], $this->env());
        try {
            $this->assertSame(0, $code, $out.$err);
            $this->assertFileEquals(dirname(__DIR__, 2).'/config/suitex-events.php', "$app/config/suitex-events.php");
        } finally {
            @unlink("$app/config/suitex-events.php");
        }
        $this->migrate();
        $this->assertSame(['event_store', 'event_store_aggregates', 'event_store_merged_position', 'event_store_parked_events', 'event_store_parking', 'event_store_sequence'], array_keys(Harness::snapshot($this->eventStore)), 'the package migrations created the tables');
    }
}
