<?php

namespace Tests\Feature;

use PDO;
use Tests\Support\Harness;
use Tests\Support\LaravelTestCase;

/**
 * The Laravel migration and the suitex-events (sqlx) migration create the same table: same
 * columns, types, defaults, keys, checks and triggers, as information_schema describes them.
 */
final class SchemaParityTest extends LaravelTestCase
{
    public function test_the_laravel_and_sqlx_migrations_create_the_same_table(): void
    {
        $this->migrate(); // Laravel, into $this->eventStore
        $sqlx = Harness::createDatabase('es_sqlx');
        try {
            $bin = getenv('SUITEX_EVENTS_BIN') ?: dirname(__DIR__, 3).'/target/debug/suitex-events';
            $this->assertFileExists($bin, 'build the CLI first (cargo build), or set SUITEX_EVENTS_BIN');
            [$host, $port, $user, $password] = Harness::server();
            $proc = proc_open([$bin, 'migrate'], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, array_merge(Harness::baseEnv(), [
                'DB_EVENT_STORE_HOST' => $host, 'DB_EVENT_STORE_PORT' => (string) $port, 'DB_EVENT_STORE_DATABASE' => $sqlx,
                'DB_EVENT_STORE_USERNAME' => $user, 'DB_EVENT_STORE_PASSWORD' => $password, 'DB_EVENT_STORE_SSL_MODE' => 'disabled',
            ]));
            $out = stream_get_contents($pipes[1]).stream_get_contents($pipes[2]);
            $this->assertSame(0, proc_close($proc), $out);

            $laravel = $this->describe($this->eventStore);
            $native = $this->describe($sqlx);
            foreach (array_keys($native) as $aspect) {
                if (! preg_match('/ (checks|triggers)$/', $aspect) || str_starts_with($aspect, 'event_store ')) {
                    $this->assertNotEmpty($native[$aspect], "$aspect is described");
                }
                $this->assertSame($native[$aspect], $laravel[$aspect], "$aspect differs between the two migrations");
            }
        } finally {
            Harness::dropDatabase($sqlx);
        }
    }

    /** The event store's tables as information_schema has them, per table and aspect. */
    private function describe(string $schema): array
    {
        $out = [];
        foreach (['event_store', 'event_store_sequence', 'event_store_aggregates', 'event_store_merged_position', 'event_store_parking', 'event_store_parked_events'] as $table) {
            foreach ($this->describeTable($schema, $table) as $aspect => $rows) {
                $out["$table $aspect"] = $rows;
            }
        }

        return $out;
    }

    private function describeTable(string $schema, string $table): array
    {
        $pdo = Harness::pdo();
        $q = function (string $sql) use ($pdo, $schema, $table) {
            $st = $pdo->prepare(str_replace("'event_store'", '?', $sql));
            $st->execute([$schema, $table]);

            return $st->fetchAll(PDO::FETCH_ASSOC);
        };

        return [
            'table' => $q("SELECT engine, table_collation FROM information_schema.tables WHERE table_schema = ? AND table_name = 'event_store'"),
            'columns' => $q("SELECT column_name, ordinal_position, column_type, is_nullable, column_default, extra, character_set_name, collation_name
                FROM information_schema.columns WHERE table_schema = ? AND table_name = 'event_store' ORDER BY ordinal_position"),
            'indexes' => $q("SELECT index_name, non_unique, seq_in_index, column_name, index_type
                FROM information_schema.statistics WHERE table_schema = ? AND table_name = 'event_store' ORDER BY index_name, seq_in_index"),
            'checks' => $q("SELECT constraint_name, check_clause FROM information_schema.check_constraints
                WHERE constraint_schema = ? AND table_name = 'event_store' ORDER BY constraint_name"),
            'triggers' => $q("SELECT trigger_name, action_timing, event_manipulation, action_statement
                FROM information_schema.triggers WHERE trigger_schema = ? AND event_object_table = 'event_store' ORDER BY trigger_name"),
        ];
    }
}
