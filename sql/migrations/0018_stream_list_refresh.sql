-- The stream refreshes the recommendation lists of each micro-batch's users (jobs.recs.refresh):
-- how many users' lists it replaced, or why it could not (the batch's triggers went on).
ALTER TABLE push.stream_batches
    ADD COLUMN lists_refreshed integer,
    ADD COLUMN lists_error text;
