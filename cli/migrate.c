/*
 * migrate.c — `mailhook migrate`: applies migrations/NNNN_name.sql in order.
 *
 * Each file runs in its own transaction together with its row in schema_migrations, so
 * a failed file leaves nothing half-applied. A session advisory lock serializes
 * concurrent runs (two deploys at once): the second waits, then finds nothing to do.
 */
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/log.h"
#include "mailhook/pg.h"

#define MIGRATE_LOCK_KEY "7244117155150352001"

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_migration(const char *name)
{
    size_t n = strlen(name);
    return n > 9 && name[0] >= '0' && name[0] <= '9' && name[1] >= '0' && name[1] <= '9' &&
           name[2] >= '0' && name[2] <= '9' && name[3] >= '0' && name[3] <= '9' &&
           name[4] == '_' && !strcmp(name + n - 4, ".sql");
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = mh_malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    buf[got] = '\0';
    return buf;
}

static int exec_cmd(PGconn *pg, const char *sql, const char *what)
{
    PGresult *res = PQexec(pg, sql);
    /* A migration file may end with a SELECT: rows are as good as a command. */
    ExecStatusType want = PQresultStatus(res) == PGRES_TUPLES_OK ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
    char err[1024];
    int rc = mh_pg_ok(res, want, what, err, sizeof(err));
    if (rc < 0) fprintf(stderr, "mailhook migrate: %s\n", err);
    PQclear(res);
    return rc;
}

static int is_applied(PGconn *pg, const char *version)
{
    const char *params[] = {version};
    PGresult *res = PQexecParams(pg, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                                 NULL, params, NULL, NULL, 0);
    int applied = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
    PQclear(res);
    return applied;
}

static int apply_one(PGconn *pg, const char *dir, const char *file)
{
    char path[4096], version[256];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    snprintf(version, sizeof(version), "%.*s", (int)(strlen(file) - 4), file);
    char *sql = read_file(path);
    if (!sql) {
        fprintf(stderr, "mailhook migrate: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    if (exec_cmd(pg, "BEGIN", "begin") < 0) goto out;
    if (exec_cmd(pg, sql, file) < 0) goto rollback;
    const char *params[] = {version};
    PGresult *res = PQexecParams(pg, "INSERT INTO schema_migrations (version) VALUES ($1)", 1, NULL,
                                 params, NULL, NULL, 0);
    char err[1024];
    int ok = mh_pg_ok(res, PGRES_COMMAND_OK, "record the migration", err, sizeof(err)) == 0;
    if (!ok) fprintf(stderr, "mailhook migrate: %s: %s\n", version, err);
    PQclear(res);
    if (!ok) goto rollback;
    if (exec_cmd(pg, "COMMIT", "commit") < 0) goto out;
    printf("applied %s\n", version);
    rc = 0;
    goto out;
rollback:
    exec_cmd(pg, "ROLLBACK", "rollback");
out:
    free(sql);
    return rc;
}

int cmd_migrate(struct mh_config *cfg, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(argc > 1 && strcmp(argv[1], "--help") ? stderr : stdout,
                "usage: mailhook [--config FILE] migrate\n\n"
                "Applies the SQL files of [postgres] migrations_dir (NNNN_name.sql) that\n"
                "schema_migrations does not list yet, in order, each in one transaction.\n");
        return strcmp(argv[1], "--help") ? 2 : 0;
    }
    const char *dir = cfg->postgres.migrations_dir;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "mailhook migrate: cannot open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char **files = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_migration(de->d_name)) continue;
        files = mh_realloc(files, (n + 1) * sizeof(char *));
        files[n++] = mh_strdup(de->d_name);
    }
    closedir(d);
    qsort(files, n, sizeof(char *), by_name);

    int rc = 1;
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {cfg->postgres.dsn, "mailhook-migrate", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "mailhook migrate: postgres: %s", PQerrorMessage(pg));
        goto out;
    }
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    if (exec_cmd(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "lock") < 0) goto out;
    if (exec_cmd(pg,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                 "schema_migrations") < 0)
        goto unlock;
    size_t applied = 0;
    for (size_t i = 0; i < n; i++) {
        char version[256];
        snprintf(version, sizeof(version), "%.*s", (int)(strlen(files[i]) - 4), files[i]);
        if (is_applied(pg, version)) continue;
        if (apply_one(pg, dir, files[i]) < 0) goto unlock;
        applied++;
    }
    printf("migrations: %zu applied, %zu total\n", applied, n);
    rc = 0;
unlock:
    exec_cmd(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "unlock");
out:
    PQfinish(pg);
    for (size_t i = 0; i < n; i++) free(files[i]);
    free(files);
    return rc;
}
