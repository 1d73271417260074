<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Schema;

/*
 * The ledger's proof: `row_hash`, SHA-256 over the previous row's hash and the row's canonical
 * encoding in `seq` order, assigned by the numbering trigger inside the appending transaction —
 * whoever writes. The same statements as the suitex-events migration
 * sdk/migrations/0003_ledger_chain.sql (a test compares the schemas; that file specifies the
 * encoding and explains each choice). It chains every existing row in seq order: run it with
 * the writers stopped. `suitex-events verify` checks the chain.
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
        // One connection for every statement: the chaining UPDATE carries each hash to the next
        // row in a session variable.
        $db = DB::connection($this->connection);
        $db->unprepared(<<<'SQL'
ALTER TABLE event_store_sequence
    ADD COLUMN last_hash CHAR(64) CHARACTER SET ascii NOT NULL
        DEFAULT '0000000000000000000000000000000000000000000000000000000000000000'
SQL);
        $db->unprepared(<<<'SQL'
ALTER TABLE event_store
    ADD COLUMN row_hash CHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '' AFTER aggregate_version
SQL);
        $db->unprepared(<<<'SQL'
DROP TRIGGER event_store_no_update
SQL);
        $db->unprepared(<<<'SQL'
SET @suitex_lf = CHAR(10 USING utf8mb4)
SQL);
        $db->unprepared(<<<'SQL'
SET @suitex_ledger_chain = '0000000000000000000000000000000000000000000000000000000000000000'
SQL);
        $db->unprepared(<<<'SQL'
UPDATE event_store SET row_hash = (@suitex_ledger_chain := SHA2(CONVERT(CONCAT(
    'suitex-ledger/1', @suitex_lf, @suitex_ledger_chain,
    @suitex_lf, 'seq=', LENGTH(seq), ':', seq,
    @suitex_lf, 'event_id=', LENGTH(event_id), ':', event_id,
    @suitex_lf, 'account_id=', LENGTH(account_id), ':', account_id,
    @suitex_lf, 'aggregate_type=', LENGTH(aggregate_type), ':', aggregate_type,
    @suitex_lf, 'aggregate_id=', LENGTH(aggregate_id), ':', aggregate_id,
    @suitex_lf, 'aggregate_version=', LENGTH(aggregate_version), ':', aggregate_version,
    @suitex_lf, 'event_type=', LENGTH(event_type), ':', event_type,
    @suitex_lf, 'occurred_at=26:', DATE_FORMAT(occurred_at, '%Y-%m-%d %H:%i:%s.%f'),
    @suitex_lf, 'created_at=26:', DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f'),
    @suitex_lf, 'payload=', LENGTH(CONVERT(payload USING utf8mb4)), ':', CONVERT(payload USING utf8mb4),
    @suitex_lf, 'metadata=', IF(metadata IS NULL, 'null',
        CONCAT(LENGTH(CONVERT(metadata USING utf8mb4)), ':', CONVERT(metadata USING utf8mb4)))
) USING utf8mb4), 256))
ORDER BY seq
SQL);
        $db->unprepared(<<<'SQL'
CREATE TRIGGER event_store_no_update BEFORE UPDATE ON event_store FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store is append-only: UPDATE is not allowed'
SQL);
        $db->unprepared(<<<'SQL'
UPDATE event_store_sequence
    SET last_hash = COALESCE((SELECT row_hash FROM event_store ORDER BY seq DESC LIMIT 1), last_hash)
    WHERE id = 1
SQL);
        $db->unprepared(<<<'SQL'
DROP TRIGGER event_store_assign_order
SQL);
        $db->unprepared(<<<'SQL'
CREATE TRIGGER event_store_assign_order BEFORE INSERT ON event_store FOR EACH ROW
BEGIN
    DECLARE next_seq BIGINT UNSIGNED;
    DECLARE previous CHAR(64) CHARACTER SET ascii;
    DECLARE payload_text LONGTEXT CHARACTER SET utf8mb4;
    DECLARE metadata_text LONGTEXT CHARACTER SET utf8mb4;
    DECLARE lf CHAR(1) CHARACTER SET utf8mb4 DEFAULT CHAR(10 USING utf8mb4);
    SELECT last_seq + 1, last_hash INTO next_seq, previous
        FROM event_store_sequence WHERE id = 1 FOR UPDATE;
    SET NEW.seq = next_seq;
    INSERT INTO event_store_aggregates (account_id, aggregate_type, aggregate_id, last_version)
        VALUES (NEW.account_id, NEW.aggregate_type, NEW.aggregate_id, LAST_INSERT_ID(1))
        ON DUPLICATE KEY UPDATE last_version = LAST_INSERT_ID(last_version + 1);
    SET NEW.aggregate_version = LAST_INSERT_ID();
    SET payload_text = CONVERT(NEW.payload USING utf8mb4);
    SET metadata_text = CONVERT(NEW.metadata USING utf8mb4);
    SET NEW.row_hash = SHA2(CONVERT(CONCAT(
        'suitex-ledger/1', lf, previous,
        lf, 'seq=', LENGTH(NEW.seq), ':', NEW.seq,
        lf, 'event_id=', LENGTH(NEW.event_id), ':', NEW.event_id,
        lf, 'account_id=', LENGTH(NEW.account_id), ':', NEW.account_id,
        lf, 'aggregate_type=', LENGTH(NEW.aggregate_type), ':', NEW.aggregate_type,
        lf, 'aggregate_id=', LENGTH(NEW.aggregate_id), ':', NEW.aggregate_id,
        lf, 'aggregate_version=', LENGTH(NEW.aggregate_version), ':', NEW.aggregate_version,
        lf, 'event_type=', LENGTH(NEW.event_type), ':', NEW.event_type,
        lf, 'occurred_at=26:', DATE_FORMAT(NEW.occurred_at, '%Y-%m-%d %H:%i:%s.%f'),
        lf, 'created_at=26:', DATE_FORMAT(NEW.created_at, '%Y-%m-%d %H:%i:%s.%f'),
        lf, 'payload=', LENGTH(payload_text), ':', payload_text,
        lf, 'metadata=', IF(metadata_text IS NULL, 'null', CONCAT(LENGTH(metadata_text), ':', metadata_text))
    ) USING utf8mb4), 256);
    UPDATE event_store_sequence SET last_seq = next_seq, last_hash = NEW.row_hash WHERE id = 1;
END
SQL);
    }

    /**
     * Safe: a rollback never takes the chain away from stored events. With events stored, it
     * stops here; on an empty table it removes what up() added and restores the numbering
     * trigger without the chain.
     */
    public function down()
    {
        $schema = Schema::connection($this->connection);
        $db = DB::connection($this->connection);
        if (! $schema->hasTable('event_store') || ! $schema->hasColumn('event_store', 'row_hash')) {
            return;
        }
        $events = $db->table('event_store')->count();
        if ($events > 0) {
            throw new RuntimeException(
                "event_store holds {$events} events and is append-only: this rollback does not take their row_hash away. "
                .'If it really must go, back the table up and undo the migration by hand.'
            );
        }
        $db->unprepared('DROP TRIGGER IF EXISTS event_store_assign_order');
        $db->unprepared('ALTER TABLE event_store DROP COLUMN row_hash');
        $db->unprepared('ALTER TABLE event_store_sequence DROP COLUMN last_hash');
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
};
