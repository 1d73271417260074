<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Schema;

/*
 * The ledger's own order: `seq`, a gapless sequence in commit order, and `aggregate_version`,
 * 1, 2, 3 … per aggregate, both assigned by a trigger inside the appending transaction —
 * whoever writes. And the position of the `events.merged` feeder. The same schema as the
 * suitex-events migration sdk/migrations/0002_ledger_order.sql (a test compares the two; that
 * file explains each choice). It numbers every existing row in id order: run it with the
 * writers stopped.
 */
return new class extends Migration
{
    protected $connection = 'event_store';

    public function __construct()
    {
        $this->connection = config('suitex-events.connection', 'event_store');
    }

    public function up()
    {
        $schema = Schema::connection($this->connection);
        $db = DB::connection($this->connection);
        $table = function (Blueprint $table) {
            $table->engine = 'InnoDB';
            $table->charset = 'utf8mb4';
            $table->collation = 'utf8mb4_unicode_ci';
        };

        $schema->create('event_store_sequence', function (Blueprint $t) use ($table) {
            $table($t);
            $t->unsignedTinyInteger('id')->primary();
            $t->unsignedBigInteger('last_seq');
        });
        $db->unprepared('ALTER TABLE event_store_sequence ADD CONSTRAINT event_store_sequence_one_row CHECK (id = 1)');

        $schema->create('event_store_aggregates', function (Blueprint $t) use ($table) {
            $table($t);
            $t->unsignedBigInteger('account_id');
            $t->string('aggregate_type', 128);
            $t->string('aggregate_id', 191)->collation('utf8mb4_bin');
            $t->unsignedInteger('last_version');
            $t->primary(['account_id', 'aggregate_type', 'aggregate_id'], 'event_store_aggregates_primary');
        });

        $schema->create('event_store_merged_position', function (Blueprint $t) use ($table) {
            $table($t);
            $t->unsignedBigInteger('seq')->primary();
            $t->dateTime('recorded_at', 6)->useCurrent();
        });

        $schema->table('event_store', function (Blueprint $t) {
            $t->unsignedBigInteger('seq')->default(0)->after('id');
            $t->unsignedInteger('aggregate_version')->default(0)->after('aggregate_id');
        });

        $db->unprepared('DROP TRIGGER event_store_no_update');
        $db->unprepared(
            'UPDATE event_store AS e JOIN ('
            .' SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS seq,'
            .' ROW_NUMBER() OVER (PARTITION BY account_id, aggregate_type, aggregate_id ORDER BY id) AS aggregate_version'
            .' FROM event_store) AS n ON n.id = e.id'
            .' SET e.seq = n.seq, e.aggregate_version = n.aggregate_version'
        );
        $db->unprepared(
            "CREATE TRIGGER event_store_no_update BEFORE UPDATE ON event_store FOR EACH ROW\n"
            ."    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store is append-only: UPDATE is not allowed'"
        );

        $schema->table('event_store', function (Blueprint $t) {
            $t->unique('seq', 'event_store_seq_unique');
            $t->unique(['account_id', 'aggregate_type', 'aggregate_id', 'aggregate_version'], 'event_store_aggregate_version_unique');
            $t->dropIndex('event_store_account_aggregate_index');
        });

        $db->unprepared('INSERT INTO event_store_sequence (id, last_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM event_store');
        $db->unprepared(
            'INSERT INTO event_store_aggregates (account_id, aggregate_type, aggregate_id, last_version)'
            .' SELECT account_id, aggregate_type, aggregate_id, MAX(aggregate_version) FROM event_store'
            .' GROUP BY account_id, aggregate_type, aggregate_id'
        );
        $db->unprepared(<<<'SQL'
CREATE TRIGGER event_store_assign_order BEFORE INSERT ON event_store FOR EACH ROW
BEGIN
    UPDATE event_store_sequence SET last_seq = LAST_INSERT_ID(last_seq + 1) WHERE id = 1;
    SET NEW.seq = LAST_INSERT_ID();
    INSERT INTO event_store_aggregates (account_id, aggregate_type, aggregate_id, last_version)
        VALUES (NEW.account_id, NEW.aggregate_type, NEW.aggregate_id, LAST_INSERT_ID(1))
        ON DUPLICATE KEY UPDATE last_version = LAST_INSERT_ID(last_version + 1);
    SET NEW.aggregate_version = LAST_INSERT_ID();
END
SQL);
    }

    /**
     * Safe: a rollback never takes the order away from stored events. With events stored, it
     * stops here; on an empty table it removes what up() added.
     */
    public function down()
    {
        $schema = Schema::connection($this->connection);
        $db = DB::connection($this->connection);
        if ($schema->hasTable('event_store')) {
            $events = $db->table('event_store')->count();
            if ($events > 0) {
                throw new RuntimeException(
                    "event_store holds {$events} events and is append-only: this rollback does not take their seq and aggregate_version away. "
                    .'If it really must go, back the table up and undo the migration by hand.'
                );
            }
            $db->unprepared('DROP TRIGGER IF EXISTS event_store_assign_order');
            $schema->table('event_store', function (Blueprint $t) {
                $t->index(['account_id', 'aggregate_type', 'aggregate_id'], 'event_store_account_aggregate_index');
                $t->dropUnique('event_store_aggregate_version_unique');
                $t->dropUnique('event_store_seq_unique');
                $t->dropColumn(['seq', 'aggregate_version']);
            });
        }
        $schema->dropIfExists('event_store_merged_position');
        $schema->dropIfExists('event_store_aggregates');
        $schema->dropIfExists('event_store_sequence');
    }
};
