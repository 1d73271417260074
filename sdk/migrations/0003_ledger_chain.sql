-- The ledger's proof (docs/architecture.md §2.2, "The hash chain"): `row_hash`, SHA-256 over
-- the previous row's hash and the row's canonical encoding, in `seq` order — assigned inside the
-- appending transaction by the numbering trigger, whoever writes, so that a row changed,
-- removed, inserted out of band or reordered breaks the chain at its `seq`
-- (`suitex-events verify`).
--
-- Written in the SQL common to MySQL 8 and MariaDB 10.11; the Laravel migration
-- 2026_12_07_000000_add_hash_chain_to_event_store.php does the same (a test compares them).
-- It chains every existing row in `seq` order: run it with the writers stopped.
--
-- The canonical encoding, version 1 (`suitex-ledger/1`), is the UTF-8 text
--
--     suitex-ledger/1 LF <previous row_hash> LF
--     seq=<n>:<v> LF event_id=<n>:<v> LF account_id=<n>:<v> LF aggregate_type=<n>:<v> LF
--     aggregate_id=<n>:<v> LF aggregate_version=<n>:<v> LF event_type=<n>:<v> LF
--     occurred_at=<n>:<v> LF created_at=<n>:<v> LF payload=<n>:<v> LF metadata=<n>:<v>
--
-- where <v> is the column's value as the database returns it — integers in decimal, the two
-- times as `YYYY-MM-DD HH:MM:SS.ffffff`, `payload` and `metadata` as their JSON text — and <n>
-- is <v>'s length in bytes; a NULL `metadata` is written `metadata=null` (no length). The first
-- row's previous hash is 64 zeros. `row_hash` is the lowercase hex SHA-256 of that text. `id`
-- is not chained: AUTO_INCREMENT assigns it after the trigger, and `seq` is the ledger's
-- position.

ALTER TABLE event_store_sequence
    ADD COLUMN last_hash CHAR(64) CHARACTER SET ascii NOT NULL
        DEFAULT '0000000000000000000000000000000000000000000000000000000000000000';

-- DEFAULT '' only so that an INSERT not naming it is valid before the trigger runs; the
-- trigger always assigns it.
ALTER TABLE event_store
    ADD COLUMN row_hash CHAR(64) CHARACTER SET ascii NOT NULL DEFAULT '' AFTER aggregate_version;

-- Chain the rows already stored, in `seq` order (one statement; the append-only trigger is
-- lifted for it). A session variable carries each hash to the next row. Line feeds are written
-- CHAR(10), so that no sql_mode (NO_BACKSLASH_ESCAPES) can change the encoding.
DROP TRIGGER event_store_no_update;

SET @suitex_lf = CHAR(10 USING utf8mb4);
SET @suitex_ledger_chain = '0000000000000000000000000000000000000000000000000000000000000000';

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
ORDER BY seq;

CREATE TRIGGER event_store_no_update BEFORE UPDATE ON event_store FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store is append-only: UPDATE is not allowed';

UPDATE event_store_sequence
    SET last_hash = COALESCE((SELECT row_hash FROM event_store ORDER BY seq DESC LIMIT 1), last_hash)
    WHERE id = 1;

-- The numbering trigger, now also chaining. The counter row is read with a locking read (the
-- latest committed values, whatever the session's snapshot) and locked until commit, as before:
-- appends serialize, so each row's previous hash is the row before it in `seq`. It is taken
-- first, before the aggregate's row, so that two multi-row INSERTs cannot deadlock.
DROP TRIGGER event_store_assign_order;

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
END;
