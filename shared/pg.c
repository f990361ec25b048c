/*
 * pg.c — PostgreSQL result checks shared by the pipeline, the store and the CLI.
 */
#include "mailhook/pg.h"

#include <stdio.h>
#include <string.h>

int mh_pg_ok(PGresult *res, ExecStatusType want, const char *what, char *err, size_t errlen)
{
    if (res && PQresultStatus(res) == want) return 0;
    snprintf(err, errlen, "postgres %s: %s", what,
             res ? PQresultErrorMessage(res) : "no result (connection lost)");
    char *nl = strchr(err, '\n');
    if (nl) *nl = '\0';
    return -1;
}

const char *mh_pg_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

int mh_pg_sqlstate_transient(const char *sqlstate)
{
    static const char *const classes[] = {"08", "53", "57", "40", "55", NULL};
    if (!sqlstate || strlen(sqlstate) < 2) return 1;
    for (const char *const *c = classes; *c; c++)
        if (!strncmp(sqlstate, *c, 2)) return 1;
    return 0;
}
