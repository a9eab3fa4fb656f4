-- The search index as an FTS5 inverted index (issue 22). A B-tree row per
-- (term, record) took about 3,500 bytes per record at 1,000,000 records
-- (about 60 terms each, and an index by record to find them again), and
-- filing a record meant ~60 inserts at random places in a table larger
-- than the page cache: 60% of an initial sync's time. FTS5 keeps, per term,
-- a sorted list of record rows, compressed, written in sorted segments
-- merged in the background: a few bytes per term and record, and filing is
-- appending.
--
-- Still no plaintext: each record's "text" is its terms, each the hex of
-- the first 10 bytes of a keyed hash (`sealing::search_term`), and the table
-- is contentless (the text is not kept). A record is taken out of the index
-- with the same terms, computed again from its stored view (the 'delete'
-- command), and `secure-delete` removes them from the index at once rather
-- than leaving markers until a merge: an erased record leaves no term
-- behind. detail=none: only which records hold a term, no positions.
DROP TABLE search_terms;
CREATE VIRTUAL TABLE search_index USING fts5(
    terms, content='', columnsize=0, detail=none, tokenize='ascii'
);
INSERT INTO search_index (search_index, rank) VALUES ('secure-delete', 1);
-- Every record is filed again, once, when the node is next unlocked.
DELETE FROM meta WHERE key IN ('search_index_complete', 'search_index_filed');
