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

#endif
