-- The append-only event ledger (docs/architecture.md §2.2).
--
-- Written in the SQL common to MySQL 8 and MariaDB 10.11. The Laravel migration in
-- laravel-stub/database/migrations/ creates the same table; a test compares the two.
-- DATETIME (not TIMESTAMP) keeps the ledger valid past 2038; the worker's sessions use UTC.
-- aggregate_id compares byte for byte, like the Pub/Sub ordering key it is part of.
CREATE TABLE event_store (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    account_id BIGINT UNSIGNED NOT NULL,
    event_id CHAR(36) NOT NULL,
    aggregate_type VARCHAR(128) NOT NULL,
    aggregate_id VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    event_type VARCHAR(128) NOT NULL,
    payload JSON NOT NULL,
    metadata JSON NULL,
    occurred_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY event_store_event_id_unique (event_id),
    KEY event_store_account_aggregate_index (account_id, aggregate_type, aggregate_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Append-only, enforced in the database itself (the worker's grants are the second line, the
-- code the third). MySQL with binary logging needs log_bin_trust_function_creators=on (or
-- SUPER) to create triggers; terraform/ sets that flag on the Cloud SQL instance.
CREATE TRIGGER event_store_no_update BEFORE UPDATE ON event_store FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store is append-only: UPDATE is not allowed';

CREATE TRIGGER event_store_no_delete BEFORE DELETE ON event_store FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store is append-only: DELETE is not allowed';
