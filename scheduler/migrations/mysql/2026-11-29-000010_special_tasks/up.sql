-- Autotest's special tasks. jobs.tasks is a set of flags (scheduler::api::task_flags):
-- 1 verify before; 2 cleanup before, always; 4 cleanup before if the host is dirty;
-- 8 cleanup after, always; 32 repair only (atest host repair). A host is dirty once a
-- job has run on it, until a cleanup passes.
ALTER TABLE jobs ADD COLUMN tasks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN dirty BOOLEAN NOT NULL DEFAULT 0;
