-- Control operations are read per case on every load and every sync round.
CREATE INDEX control_ops_by_case ON control_ops (case_ref, id);
