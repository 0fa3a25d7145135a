-- +goose Up
-- Messages decided in an orders transaction and published by the relay
-- afterwards (transactional outbox): a compensation exists if and only if the
-- status change that decided it committed. The relay claims due rows with
-- FOR UPDATE SKIP LOCKED, publishes them, and marks them sent.
CREATE TABLE outbox (
    id              BIGINT       NOT NULL AUTO_INCREMENT,
    message_id      CHAR(36)     CHARACTER SET ascii NOT NULL,
    topic           VARCHAR(100) NOT NULL,
    msg_key         VARCHAR(100) NOT NULL,
    payload         TEXT         NOT NULL,
    order_id        CHAR(36)     CHARACTER SET ascii NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    next_attempt_at DATETIME(6)  NOT NULL,
    attempts        INT          NOT NULL DEFAULT 0,
    last_error      VARCHAR(500) NULL,
    sent_at         DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_outbox_message (message_id),
    KEY ix_outbox_due (sent_at, next_attempt_at),
    KEY ix_outbox_order (order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE outbox;
