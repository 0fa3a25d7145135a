-- +goose Up
-- Orders and what is known of their reservation.
-- status: PENDING | CONFIRMED | FAILED | COMPENSATING | CANCELLING | CANCELLED.
-- next_check_at: when the recovery worker should look at an unsettled order
-- (set before the first product call, so a crash never strands an order).
CREATE TABLE orders (
    id            CHAR(36)     CHARACTER SET ascii NOT NULL,
    customer_id   VARCHAR(128) NOT NULL,
    status        VARCHAR(16)  NOT NULL,
    reason        VARCHAR(32)  NULL,
    shortages     JSON         NULL,
    total_cents   BIGINT       NULL,
    next_check_at DATETIME(6)  NULL,
    checks        INT          NOT NULL DEFAULT 0,
    last_error    VARCHAR(500) NULL,
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_orders_customer (customer_id, created_at, id),
    KEY ix_orders_due (next_check_at),
    KEY ix_orders_status (status, created_at),
    CONSTRAINT ck_orders_status CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED', 'COMPENSATING', 'CANCELLING', 'CANCELLED'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The lines as the customer asked for them; unit prices are filled in from
-- the product service's answer when the order is confirmed.
CREATE TABLE order_lines (
    order_id         CHAR(36) CHARACTER SET ascii NOT NULL,
    line_no          SMALLINT NOT NULL,
    product_id       BIGINT   NOT NULL,
    quantity         INT      NOT NULL,
    unit_price_cents BIGINT   NULL,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT fk_order_lines_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every reservation attempt, recorded SENT before the call leaves, so the
-- attempt can always be resolved later. status: SENT | APPLIED | REJECTED |
-- ABORTED | COMPENSATED.
CREATE TABLE order_attempts (
    attempt_id  CHAR(36)    CHARACTER SET ascii NOT NULL,
    order_id    CHAR(36)    CHARACTER SET ascii NOT NULL,
    seq         SMALLINT    NOT NULL,
    status      VARCHAR(16) NOT NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    resolved_at DATETIME(6) NULL,
    PRIMARY KEY (attempt_id),
    UNIQUE KEY uq_order_attempts_seq (order_id, seq),
    CONSTRAINT fk_order_attempts_order FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT ck_order_attempts_status CHECK (status IN ('SENT', 'APPLIED', 'REJECTED', 'ABORTED', 'COMPENSATED'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- (customer, Idempotency-Key) -> the order it created. request_hash is the
-- SHA-256 of the canonical request, so a different body with a used key is
-- recognised and refused.
CREATE TABLE idempotency_keys (
    customer_id  VARCHAR(128) NOT NULL,
    idem_key     VARCHAR(64)  NOT NULL,
    request_hash CHAR(64)     CHARACTER SET ascii NOT NULL,
    order_id     CHAR(36)     CHARACTER SET ascii NOT NULL,
    created_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (customer_id, idem_key),
    CONSTRAINT fk_idempotency_keys_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE order_attempts;
DROP TABLE order_lines;
DROP TABLE orders;
