-- The ledger's own order (docs/architecture.md §2.2): `seq`, a gapless sequence in commit order,
-- and `aggregate_version`, 1, 2, 3 … per aggregate in that order — both assigned inside the
-- appending transaction by a trigger, whoever writes (the worker, `events:work`, an operator's
-- INSERT). And the position of the `events.merged` feeder.
--
-- Written in the SQL common to MySQL 8 and MariaDB 10.11; the Laravel migration
-- 2026_12_06_000000_add_ledger_order_to_event_store.php does the same (a test compares them).
-- It numbers every existing row, in id order: run it with the writers stopped.

-- One row: the last `seq` handed out. Every append locks it (an UPDATE) until its
-- transaction ends, so appends commit one after the other in `seq` order: a reader that can see
-- `seq` n can see every smaller one. A rolled-back append rolls the counter back with it, so
-- there are no gaps.
CREATE TABLE event_store_sequence (
    id TINYINT UNSIGNED NOT NULL,
    last_seq BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT event_store_sequence_one_row CHECK (id = 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per aggregate: the last `aggregate_version` handed out. Every append upserts its
-- aggregate's row (locking it until the transaction ends).
CREATE TABLE event_store_aggregates (
    account_id BIGINT UNSIGNED NOT NULL,
    aggregate_type VARCHAR(128) NOT NULL,
    aggregate_id VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    last_version INT UNSIGNED NOT NULL,
    PRIMARY KEY (account_id, aggregate_type, aggregate_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The feeder's durable position: every row up to `seq` is on `events.merged`. Insert-only; the
-- position is the largest `seq`.
CREATE TABLE event_store_merged_position (
    seq BIGINT UNSIGNED NOT NULL,
    recorded_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- DEFAULT 0 only so that an INSERT naming neither column is valid before the trigger runs; the
-- trigger always assigns both.
ALTER TABLE event_store
    ADD COLUMN seq BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER id,
    ADD COLUMN aggregate_version INT UNSIGNED NOT NULL DEFAULT 0 AFTER aggregate_id;

-- Number the rows already stored, in id order (the order the ledger had until now). The
-- append-only trigger is lifted for this one statement.
DROP TRIGGER event_store_no_update;

UPDATE event_store AS e
JOIN (
    SELECT id,
           ROW_NUMBER() OVER (ORDER BY id) AS seq,
           ROW_NUMBER() OVER (PARTITION BY account_id, aggregate_type, aggregate_id ORDER BY id) AS aggregate_version
    FROM event_store
) AS n ON n.id = e.id
SET e.seq = n.seq, e.aggregate_version = n.aggregate_version;

CREATE TRIGGER event_store_no_update BEFORE UPDATE ON event_store FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store is append-only: UPDATE is not allowed';

ALTER TABLE event_store
    ADD UNIQUE KEY event_store_seq_unique (seq),
    ADD UNIQUE KEY event_store_aggregate_version_unique (account_id, aggregate_type, aggregate_id, aggregate_version),
    DROP KEY event_store_account_aggregate_index;

INSERT INTO event_store_sequence (id, last_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM event_store;
INSERT INTO event_store_aggregates (account_id, aggregate_type, aggregate_id, last_version)
    SELECT account_id, aggregate_type, aggregate_id, MAX(aggregate_version) FROM event_store
    GROUP BY account_id, aggregate_type, aggregate_id;

-- Both numbers are taken with locking statements (an UPDATE, an upsert), which act on the
-- latest committed rows whatever the session's isolation level or snapshot. Each hands its
-- number back through LAST_INSERT_ID(expr), which costs no read; MySQL and MariaDB restore
-- LAST_INSERT_ID() when a trigger ends, so the INSERT's own auto-increment id is unaffected.
-- (A trigger may not lock rows of the table it fires on, so the numbers are kept in tables of
-- their own rather than read as MAX() of event_store.) A trigger runs with its definer's
-- rights (the migrating account), so the writer role needs no new right.
CREATE TRIGGER event_store_assign_order BEFORE INSERT ON event_store FOR EACH ROW
BEGIN
    UPDATE event_store_sequence SET last_seq = LAST_INSERT_ID(last_seq + 1) WHERE id = 1;
    SET NEW.seq = LAST_INSERT_ID();
    INSERT INTO event_store_aggregates (account_id, aggregate_type, aggregate_id, last_version)
        VALUES (NEW.account_id, NEW.aggregate_type, NEW.aggregate_id, LAST_INSERT_ID(1))
        ON DUPLICATE KEY UPDATE last_version = LAST_INSERT_ID(last_version + 1);
    SET NEW.aggregate_version = LAST_INSERT_ID();
END;
