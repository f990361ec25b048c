/*
 * pg.h — the one way mailhook checks a PostgreSQL result and classifies its error.
 */
#ifndef MH_PG_H
#define MH_PG_H

#include <libpq-fe.h>
#include <stddef.h>

/*
 * 0 when res has status want; otherwise -1 with "postgres WHAT: message" (one line) in
 * err. A NULL res (the connection was lost before a result) is an error too.
 */
int mh_pg_ok(PGresult *res, ExecStatusType want, const char *what, char *err, size_t errlen);

/* The SQLSTATE of a failed result ("" when there is none, e.g. a lost connection). */
const char *mh_pg_sqlstate(const PGresult *res);

/*
 * 1 when an error with this SQLSTATE may go away by itself, so the same statement is
 * worth running again: no SQLSTATE at all (the connection was lost), connection
 * exceptions (08), insufficient resources (53), operator intervention (57, e.g. an admin
 * shutdown), transaction rollback (40: serialization failure, deadlock) and object not
 * in prerequisite state (55, e.g. a lock not available). 0 for everything else — data
 * exceptions (22), integrity constraint violations (23), program limits (54), syntax or
 * access rule violations (42), ... — which the same input meets again.
 */
int mh_pg_sqlstate_transient(const char *sqlstate);

#endif
