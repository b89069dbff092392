-- A customer's folded state moves into its customers row. A state is about 360 bytes and a
-- row about 2.5 kB, so both still fit in one page, where the state's own table was one more
-- row to look up, and one more page to rewrite, log and checkpoint, for every customer in every
-- batch. Written with each row whose state the batch changed; a re-evaluation rewrites the
-- card and keeps the state.
ALTER TABLE customers ADD COLUMN state_format BIGINT;
ALTER TABLE customers ADD COLUMN state BYTEA;
UPDATE customers SET state_format = s.format, state = s.state
FROM customer_state s
WHERE s.version = customers.version AND s.customer_id = customers.customer_id;
DROP TABLE customer_state;
