-- Kept in step with migrations/postgres/20261201000005_round_in_one_call.sql, which adds the
-- PostgreSQL function that plays a round in one call and trades two B-tree indexes for cheaper
-- ones. Nothing changes here: SQLite plays a round in-process under its write lock, has no BRIN
-- indexes, and its history queries keep the indexes they use.
SELECT 1;
