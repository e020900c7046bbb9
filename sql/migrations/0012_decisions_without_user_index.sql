-- The planner writes every decision (several per user and run); each index on the table is paid
-- on every one of those inserts. No query reads decisions by user alone: the planner and the
-- reports look them up by run (the primary key, run_key first), the analyst views join them in
-- bulk, and an erasure scans every table of the schema for the user anyway.
DROP INDEX push.notification_decisions_user;
