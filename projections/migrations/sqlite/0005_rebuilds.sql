-- Rebuild beside live. Each projection version keeps the policy documents it is built with,
-- so projectors follow the live version's policies after a promotion and a replay can use the
-- policies that were live at a given time; when it stopped serving; and the progress of its
-- build, which the CLI and the API both read.

-- The exact text of every policy a version was built with (comments included: it is what an
-- auditor reads). `version` is the policy's content hash, as in projection_versions.
CREATE TABLE policy_documents (
    kind    TEXT NOT NULL CHECK (kind IN ('grading', 'lifecycle', 'churn')),
    version TEXT NOT NULL,
    source  TEXT NOT NULL,
    PRIMARY KEY (kind, version)
);

-- When a live version was replaced (NULL while live or never promoted).
ALTER TABLE projection_versions ADD COLUMN retired_at INTEGER;
-- A rebuild's progress: events folded so far and the events in the log when it started.
ALTER TABLE projection_versions ADD COLUMN build_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projection_versions ADD COLUMN build_total INTEGER;
ALTER TABLE projection_versions ADD COLUMN build_started_at INTEGER;
ALTER TABLE projection_versions ADD COLUMN build_updated_at INTEGER;
ALTER TABLE projection_versions ADD COLUMN build_finished_at INTEGER;
-- Why the build stopped, if it failed.
ALTER TABLE projection_versions ADD COLUMN build_error TEXT;
