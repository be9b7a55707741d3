"""A synthetic world: accounts, identifiers, planted rings and benign look-alikes, with ground
truth. It writes data-contract files; it is a data source for demos, tests and benches, not
part of ingest."""
