-- Policy arms (PUSH_POLICY_ARMS): each decision records the arm its user was in, so a
-- comparison of arms reads the decisions alone. NULL for decisions made before arms existed.
ALTER TABLE push.notification_decisions ADD COLUMN policy_arm text;
COMMENT ON COLUMN push.notification_decisions.policy_arm IS
    'the user''s policy arm at decision time: full, random_hour, fixed_cap or popularity (push.policy_arm)';
