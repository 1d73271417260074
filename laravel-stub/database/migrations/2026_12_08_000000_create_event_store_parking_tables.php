<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Schema;

/*
 * Parked keys: when an event is dead-lettered its ordering key is parked, and the key's later
 * events are kept aside until the dead letter is redriven or skipped, so that a dead letter
 * never reorders its aggregate. Two append-only tables, created by the same statements as the
 * suitex-events migration sdk/migrations/0004_parking.sql (a test compares the schemas; that
 * file explains each column).
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
        $db = DB::connection($this->connection);
        $db->unprepared(<<<'SQL'
CREATE TABLE event_store_parking (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    ordering_key VARCHAR(400) COLLATE utf8mb4_bin NOT NULL,
    action VARCHAR(16) NOT NULL,
    park_id BIGINT UNSIGNED NULL,
    event_id CHAR(36) NULL,
    message_id VARCHAR(128) NOT NULL DEFAULT '',
    data_sha256 CHAR(64) NULL,
    reason TEXT NOT NULL,
    recorded_by VARCHAR(288) NOT NULL,
    recorded_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY event_store_parking_release_unique (park_id),
    KEY event_store_parking_key_index (ordering_key, id),
    CONSTRAINT event_store_parking_action CHECK (
        (action = 'parked' AND park_id IS NULL AND data_sha256 IS NOT NULL)
        OR (action IN ('redriven', 'skipped') AND park_id IS NOT NULL))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci
SQL);
        $db->unprepared(<<<'SQL'
CREATE TABLE event_store_parked_events (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    park_id BIGINT UNSIGNED NOT NULL,
    event_id CHAR(36) NOT NULL,
    event LONGTEXT COLLATE utf8mb4_bin NOT NULL,
    parked_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY event_store_parked_events_unique (park_id, event_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci
SQL);
        $db->unprepared(<<<'SQL'
CREATE TRIGGER event_store_parking_no_update BEFORE UPDATE ON event_store_parking FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store_parking is append-only: UPDATE is not allowed'
SQL);
        $db->unprepared(<<<'SQL'
CREATE TRIGGER event_store_parking_no_delete BEFORE DELETE ON event_store_parking FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store_parking is append-only: DELETE is not allowed'
SQL);
        $db->unprepared(<<<'SQL'
CREATE TRIGGER event_store_parked_events_no_update BEFORE UPDATE ON event_store_parked_events FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store_parked_events is append-only: UPDATE is not allowed'
SQL);
        $db->unprepared(<<<'SQL'
CREATE TRIGGER event_store_parked_events_no_delete BEFORE DELETE ON event_store_parked_events FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store_parked_events is append-only: DELETE is not allowed'
SQL);
    }

    /**
     * Safe: with anything parked or ever released it stops here (the records are the key's
     * history); on empty tables it removes them.
     */
    public function down()
    {
        $schema = Schema::connection($this->connection);
        $db = DB::connection($this->connection);
        foreach (['event_store_parking', 'event_store_parked_events'] as $table) {
            if ($schema->hasTable($table) && ($rows = $db->table($table)->count()) > 0) {
                throw new RuntimeException(
                    "{$table} holds {$rows} records and is append-only: this rollback does not drop them. "
                    .'If it really must go, back the table up and undo the migration by hand.'
                );
            }
        }
        $schema->dropIfExists('event_store_parked_events');
        $schema->dropIfExists('event_store_parking');
    }
};
