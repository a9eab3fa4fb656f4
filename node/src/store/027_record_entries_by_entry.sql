-- Records changed since a mark, found from the entries after it (issue 22).
--
-- Evidence discovery and deconfliction filing look at the records that
-- entries stored after their last look changed or made. Without an index by
-- entry, every page of that walk read all of record_entries and sorted every
-- record it named again: quadratic in the records a node holds. A node that
-- had imported 10,000,000 records spent its serving core on it for hours.
-- With this index a walk reads only the links after its mark, in entry
-- order, a page at a time (11 bytes per record at 10,000,000).
CREATE INDEX record_entries_by_entry ON record_entries (entry_ref);
