-- +goose Up
-- The catalog and its stock. stock is the only copy of "how many are left";
-- stock_movements explains every change to it.
CREATE TABLE products (
    id          BIGINT      NOT NULL AUTO_INCREMENT,
    sku         VARCHAR(64) NOT NULL,
    name        VARCHAR(200) NOT NULL,
    price_cents BIGINT      NOT NULL,
    stock       BIGINT      NOT NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_products_sku (sku),
    CONSTRAINT ck_products_stock CHECK (stock >= 0),
    CONSTRAINT ck_products_price CHECK (price_cents >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The transaction log: one row per reservation attempt, written in the same
-- transaction as the stock change, so "did attempt X happen?" always has a
-- durable answer. The primary key is the fence: a resolve inserts ABORTED for
-- an attempt never seen, and a late reservation then finds the row.
-- status: APPLIED | REJECTED | ABORTED | COMPENSATED.
-- items: the requested lines in request order, with unit prices when applied.
-- rejection: why a REJECTED attempt was refused ({"shortages","unknownProducts"}).
CREATE TABLE stock_attempts (
    attempt_id CHAR(36)    CHARACTER SET ascii NOT NULL,
    order_id   CHAR(36)    CHARACTER SET ascii NOT NULL,
    status     VARCHAR(16) NOT NULL,
    items      JSON        NULL,
    reason     VARCHAR(32) NULL,
    rejection  JSON        NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (attempt_id),
    KEY ix_stock_attempts_order (order_id),
    KEY ix_stock_attempts_updated (updated_at, attempt_id),
    CONSTRAINT ck_stock_attempts_status CHECK (status IN ('APPLIED', 'REJECTED', 'ABORTED', 'COMPENSATED'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The ledger: for every product, stock = SUM(delta).
-- kind: initial (creation) | restock | reserve | compensate.
-- At most one movement of each kind per attempt and product, so a reservation
-- or a compensation can never be applied twice.
CREATE TABLE stock_movements (
    id         BIGINT      NOT NULL AUTO_INCREMENT,
    product_id BIGINT      NOT NULL,
    attempt_id CHAR(36)    CHARACTER SET ascii NULL,
    delta      BIGINT      NOT NULL,
    kind       VARCHAR(16) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY ix_stock_movements_product (product_id),
    UNIQUE KEY uq_stock_movements_attempt (attempt_id, product_id, kind),
    CONSTRAINT fk_stock_movements_product FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT ck_stock_movements_kind CHECK (kind IN ('initial', 'restock', 'reserve', 'compensate'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE stock_movements;
DROP TABLE stock_attempts;
DROP TABLE products;
