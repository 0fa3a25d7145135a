-- +goose Up
-- One row per customer who ever ordered under a per-customer quantity cap
-- (ORDER_MAX_QUANTITY): creating an order locks its customer's row, so two
-- concurrent orders of one customer, on any instance, cannot both squeeze
-- under the cap.
CREATE TABLE customer_locks (
    customer_id VARCHAR(128) NOT NULL,
    PRIMARY KEY (customer_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE customer_locks;
