// Relies on: the name of the Postgres schema pg-boss is installed in (its `schema` option).
// Nothing else: every statement on pg-boss's tables (the other files of this room) builds on it.

/** pg-boss's schema in every cutover database; named down here so rooms below pgboss can read its tables too. */
export const PGBOSS_SCHEMA = 'pgboss';
