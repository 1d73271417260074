<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Schema;

/*
 * The append-only event store on the dedicated `event_store` connection. Creates exactly the
 * table of the suitex-events migrations (sdk/migrations/0001_create_event_store.sql): same columns,
 * types, keys and triggers (a test compares the two). Run one or the other, not both.
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
        Schema::connection($this->connection)->create('event_store', function (Blueprint $table) {
            $table->engine = 'InnoDB';
            $table->charset = 'utf8mb4';
            $table->collation = 'utf8mb4_unicode_ci';

            $table->id();
            $table->unsignedBigInteger('account_id');
            $table->char('event_id', 36);
            $table->string('aggregate_type', 128);
            // Compared byte for byte, like the Pub/Sub ordering key it is part of.
            $table->string('aggregate_id', 191)->collation('utf8mb4_bin');
            $table->string('event_type', 128);
            $table->json('payload');
            $table->json('metadata')->nullable();
            $table->dateTime('occurred_at', 6);
            // DATETIME (not TIMESTAMP) keeps the ledger valid past 2038.
            $table->dateTime('created_at', 6)->useCurrent();

            $table->unique('event_id', 'event_store_event_id_unique');
            $table->index(['account_id', 'aggregate_type', 'aggregate_id'], 'event_store_account_aggregate_index');
        });

        // Append-only, enforced by the database itself. (With binary logging, MySQL needs
        // log_bin_trust_function_creators=on to let a non-SUPER account create triggers;
        // terraform/ sets it on the Cloud SQL instance.)
        $db = DB::connection($this->connection);
        $db->unprepared(
            "CREATE TRIGGER event_store_no_update BEFORE UPDATE ON event_store FOR EACH ROW\n"
            ."    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store is append-only: UPDATE is not allowed'"
        );
        $db->unprepared(
            "CREATE TRIGGER event_store_no_delete BEFORE DELETE ON event_store FOR EACH ROW\n"
            ."    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store is append-only: DELETE is not allowed'"
        );
    }

    /**
     * Safe: a rollback never destroys stored events. An empty table (a migration just applied
     * by mistake) is dropped; a table holding events is left alone and the rollback stops here.
     */
    public function down()
    {
        $db = DB::connection($this->connection);
        if (! Schema::connection($this->connection)->hasTable('event_store')) {
            return;
        }
        $events = $db->table('event_store')->count();
        if ($events > 0) {
            throw new RuntimeException(
                "event_store holds {$events} events and is append-only: this rollback does not drop it. "
                .'If it really must go, back it up and drop it by hand.'
            );
        }
        $db->unprepared('DROP TRIGGER IF EXISTS event_store_no_update');
        $db->unprepared('DROP TRIGGER IF EXISTS event_store_no_delete');
        Schema::connection($this->connection)->drop('event_store');
    }
};
