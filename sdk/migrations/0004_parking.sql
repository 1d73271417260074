-- Parking (docs/architecture.md §2.5 "Parked keys"): when an event is dead-lettered, its
-- ordering key is parked, and the key's later events are kept aside here — never appended to
-- event_store, never published to events.merged — until the dead letter comes back (redrive)
-- or an operator skips it. Then the dead letter and the kept events are appended in order.
--
-- Both tables are append-only, like the ledger: a key's state is read from its records, never
-- changed in place. The writer role holds INSERT and SELECT on them, nothing more.

-- One row per park and one per release. A park (action 'parked') names the dead letter: its
-- event id when its body could be read, its Pub/Sub message id, and the SHA-256 of its body,
-- which is how the worker knows the dead letter when a redrive brings it back. A release
-- (action 'redriven' or 'skipped') names the park it ends in `park_id`; the unique key lets a
-- park end once. A key is parked while it has a park without a release.
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
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The events kept aside while their key is parked, in arrival order (`id`): each is the full
-- event envelope as the worker would have appended it (claim-checks resolved, so the payload
-- outlives the bucket's 30-day lifecycle), byte for byte as text.
CREATE TABLE event_store_parked_events (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    park_id BIGINT UNSIGNED NOT NULL,
    event_id CHAR(36) NOT NULL,
    event LONGTEXT COLLATE utf8mb4_bin NOT NULL,
    parked_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY event_store_parked_events_unique (park_id, event_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TRIGGER event_store_parking_no_update BEFORE UPDATE ON event_store_parking FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store_parking is append-only: UPDATE is not allowed';

CREATE TRIGGER event_store_parking_no_delete BEFORE DELETE ON event_store_parking FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store_parking is append-only: DELETE is not allowed';

CREATE TRIGGER event_store_parked_events_no_update BEFORE UPDATE ON event_store_parked_events FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store_parked_events is append-only: UPDATE is not allowed';

CREATE TRIGGER event_store_parked_events_no_delete BEFORE DELETE ON event_store_parked_events FOR EACH ROW
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'event_store_parked_events is append-only: DELETE is not allowed';
