/*
 * replays.c — POST /v1/dlq/replays and GET /v1/dlq/replays/{id}: replays of raw records
 * (typically the ones behind dead letters, once their provider or source is fixed).
 *
 * A replay runs through exactly the code of `mailhook replay`: the API starts the
 * `mailhook` binary that sits next to its own executable as a child process,
 *   mailhook --config SAME replay --from-offsets P:O,... --until P:O,... --to-topic T
 *            --id api-ID --json --no-progress
 * reads its stdout (the JSON summary, replay_report.c) and stderr (its error) through
 * pipes on the loop, and reaps it on SIGCHLD (waitpid WNOHANG: the loop never blocks).
 * While it runs, GET reads its progress from its checkpoint (mh_replay_checkpoints,
 * written after each committed batch) on the pool.
 * The range per raw partition runs from the smallest offset asked for to one past the
 * largest, so records in between are replayed too (as the CLI would).
 *
 * Operator tokens only. The table of replays is bounded (REPLAYS_KEPT, the oldest
 * finished one makes room); at most REPLAYS_RUNNING run at once. When mailhook-api
 * stops, running replays get SIGTERM: they commit their batch and can be resumed with
 * `mailhook replay --resume api-ID`.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "endpoint.h"
#include "mailhook/api_tokens.h"
#include "mailhook/crypto.h"
#include "mailhook/log.h"
#include "replay_body.h"
#include "suppressions.h"

#define REPLAYS_KEPT 64
#define REPLAYS_RUNNING 4
#define OUTPUT_MAX (1 << 20)

extern char **environ;

enum status { RUNNING, DONE, FAILED };

struct replay {
    int used;
    char id[24];
    enum status status;
    int64_t total, done, emitted, dead_letters;
    char *cli;
    char *error;
    pid_t pid;
    int out_fd, err_fd;
    struct event *out_ev, *err_ev;
    struct evbuffer *out, *err;
    int exited, exit_status;
    uint64_t seq; /* age in the table */
};

struct api_replays {
    struct event_base *base;
    const struct mh_config *cfg;
    struct event *sigchld;
    struct replay r[REPLAYS_KEPT];
    uint64_t seq;
};

static const char *status_name(enum status s)
{
    return s == RUNNING ? "running" : s == DONE ? "done" : "failed";
}

static void close_pipe(struct event **ev, int *fd)
{
    if (*ev) event_free(*ev);
    *ev = NULL;
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void clear(struct replay *r)
{
    close_pipe(&r->out_ev, &r->out_fd);
    close_pipe(&r->err_ev, &r->err_fd);
    if (r->out) evbuffer_free(r->out);
    if (r->err) evbuffer_free(r->err);
    free(r->cli);
    free(r->error);
    memset(r, 0, sizeof(*r));
    r->out_fd = r->err_fd = -1;
}

/* The last non-empty line of the child's stderr, or a description of its exit. */
static char *error_of(struct replay *r)
{
    size_t len = evbuffer_get_length(r->err);
    char *txt = mh_malloc(len + 1);
    evbuffer_copyout(r->err, txt, len);
    txt[len] = '\0';
    while (len && (txt[len - 1] == '\n' || txt[len - 1] == '\r' || txt[len - 1] == ' '))
        txt[--len] = '\0';
    char *line = strrchr(txt, '\n');
    line = line ? line + 1 : txt;
    char *out = NULL;
    json_t *valid = json_string(line);
    if (*line && valid) out = mh_strdup(line);
    json_decref(valid);
    free(txt);
    if (!out) {
        char buf[96];
        if (WIFEXITED(r->exit_status))
            snprintf(buf, sizeof(buf), "mailhook replay exited with status %d",
                     WEXITSTATUS(r->exit_status));
        else
            snprintf(buf, sizeof(buf), "mailhook replay ended by signal %d",
                     WTERMSIG(r->exit_status));
        out = mh_strdup(buf);
    }
    return out;
}

/* Once the child has exited and both pipes are at EOF: its outcome. */
static void finish(struct replay *r)
{
    if (!r->exited || r->out_fd >= 0 || r->err_fd >= 0 || r->status != RUNNING) return;
    json_t *sum = NULL;
    size_t len = evbuffer_get_length(r->out);
    if (len) sum = json_loadb((const char *)evbuffer_pullup(r->out, -1), len, 0, NULL);
    if (sum) {
        r->done = json_integer_value(json_object_get(sum, "records"));
        r->emitted = json_integer_value(json_object_get(sum, "events_written"));
        r->dead_letters = json_integer_value(json_object_get(sum, "dead_letters"));
    }
    const char *st = json_string_value(json_object_get(sum, "status"));
    if (WIFEXITED(r->exit_status) && WEXITSTATUS(r->exit_status) == 0 && st && !strcmp(st, "done")) {
        r->status = DONE;
    } else {
        r->status = FAILED;
        r->error = error_of(r);
    }
    mh_info("replay api-%s %s: %lld records, %lld events, %lld dead letters", r->id,
            status_name(r->status), (long long)r->done, (long long)r->emitted,
            (long long)r->dead_letters);
    json_decref(sum);
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct replay *r = arg;
    int is_out = fd == r->out_fd;
    struct evbuffer *buf = is_out ? r->out : r->err;
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n > 0) {
        if (evbuffer_get_length(buf) + (size_t)n <= OUTPUT_MAX) evbuffer_add(buf, chunk, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (is_out) close_pipe(&r->out_ev, &r->out_fd);
    else close_pipe(&r->err_ev, &r->err_fd);
    finish(r);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct api_replays *t = arg;
    for (size_t i = 0; i < REPLAYS_KEPT; i++) {
        struct replay *r = &t->r[i];
        if (!r->used || r->exited || r->pid <= 0) continue;
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            r->exited = 1;
            r->exit_status = st;
            finish(r);
        }
    }
}

struct api_replays *api_replays_new(struct event_base *base, const struct mh_config *cfg)
{
    struct api_replays *t = mh_calloc(1, sizeof(*t));
    t->base = base;
    t->cfg = cfg;
    for (size_t i = 0; i < REPLAYS_KEPT; i++) t->r[i].out_fd = t->r[i].err_fd = -1;
    t->sigchld = evsignal_new(base, SIGCHLD, on_sigchld, t);
    event_add(t->sigchld, NULL);
    return t;
}

void api_replays_free(struct api_replays *t)
{
    if (!t) return;
    for (size_t i = 0; i < REPLAYS_KEPT; i++) {
        struct replay *r = &t->r[i];
        if (r->used && !r->exited && r->pid > 0) {
            mh_info("replay api-%s still running: stopping it (resume with mailhook replay "
                    "--resume api-%s)", r->id, r->id);
            kill(r->pid, SIGTERM);
        }
        clear(r);
    }
    if (t->sigchld) event_free(t->sigchld);
    free(t);
}

/* A free slot: an unused one, else the oldest finished one; NULL when all are taken
 * or REPLAYS_RUNNING run already. */
static struct replay *slot(struct api_replays *t)
{
    struct replay *free_one = NULL, *oldest = NULL;
    int running = 0;
    for (size_t i = 0; i < REPLAYS_KEPT; i++) {
        struct replay *r = &t->r[i];
        if (!r->used) {
            if (!free_one) free_one = r;
        } else if (r->status == RUNNING) {
            running++;
        } else if (!oldest || r->seq < oldest->seq) {
            oldest = r;
        }
    }
    if (running >= REPLAYS_RUNNING) return NULL;
    if (free_one) return free_one;
    if (oldest) clear(oldest);
    return oldest;
}

/* The mailhook binary next to this executable (/proc/self/exe). */
static int mailhook_path(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash) return -1;
    *slash = '\0';
    return snprintf(out, len, "%s/mailhook", self) < (int)len ? 0 : -1;
}

static int spawn(struct api_replays *t, struct replay *r, char *const argv[], char *err,
                 size_t errlen)
{
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    /* The child starts with default signal handling and nothing blocked. */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(&r->pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc) {
        snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(rc));
        goto fail;
    }
    close(out[1]);
    close(errp[1]);
    r->out_fd = out[0];
    r->err_fd = errp[0];
    evutil_make_socket_nonblocking(r->out_fd);
    evutil_make_socket_nonblocking(r->err_fd);
    r->out = evbuffer_new();
    r->err = evbuffer_new();
    r->out_ev = event_new(t->base, r->out_fd, EV_READ | EV_PERSIST, on_output, r);
    r->err_ev = event_new(t->base, r->err_fd, EV_READ | EV_PERSIST, on_output, r);
    event_add(r->out_ev, NULL);
    event_add(r->err_ev, NULL);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0) close(out[i]);
        if (errp[i] >= 0) close(errp[i]);
    }
    return -1;
}

static json_t *replay_json(const struct replay *r)
{
    return json_pack("{ss ss sI sI sI sI so ss}", "id", r->id, "status", status_name(r->status),
                     "total", (json_int_t)r->total, "done", (json_int_t)r->done, "emitted",
                     (json_int_t)r->emitted, "dead_letters", (json_int_t)r->dead_letters,
                     "error", r->error ? json_string(r->error) : json_null(), "cli", r->cli);
}

void api_replay_post(struct api_server *s, struct evhttp_request *req,
                     const struct mh_api_token *tok)
{
    static const char *const allowed[] = {NULL};
    struct api_query p = {0};
    json_t *body = NULL;
    char *from = NULL, *until = NULL, *cli = NULL;
    char err[512], exe[PATH_MAX];
    int64_t total;
    const char *topic;
    struct api_replays *t = api_server_replays(s);
    if (api_params(s, req, &p, allowed) < 0) goto out;
    if (!tok->operator) {
        api_reply_error(s, req, 403, "replays need an operator token");
        goto out;
    }
    if (!(body = api_body_object(s, req))) goto out;
    if (replay_body_parse(body, &from, &until, &total, &topic, err, sizeof(err)) < 0) {
        api_reply_error(s, req, 400, err);
        goto out;
    }
    if (mailhook_path(exe, sizeof(exe)) < 0 || access(exe, X_OK) < 0) {
        api_reply_error(s, req, 500, "the mailhook binary is not next to mailhook-api");
        goto out;
    }
    struct replay *r = slot(t);
    if (!r) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "10");
        api_reply_error(s, req, 503, "too many replays running; try again when one is done");
        goto out;
    }
    r->out_fd = r->err_fd = -1;
    mh_random_hex(8, r->id);
    char rid[32];
    snprintf(rid, sizeof(rid), "api-%s", r->id);
    if (asprintf(&cli, "mailhook replay --from-offsets %s --until %s --to-topic %s --id %s", from,
                 until, topic, rid) < 0) {
        cli = NULL;
        api_reply_error(s, req, 500, "out of memory");
        goto out;
    }
    const struct mh_config *cfg = api_server_cfg(s);
    char *argv[] = {exe, "--config", cfg->path, "replay", "--from-offsets", from, "--until", until,
                    "--to-topic", (char *)topic, "--id", rid, "--json", "--no-progress", NULL};
    if (spawn(t, r, argv, err, sizeof(err)) < 0) {
        clear(r);
        api_reply_unavailable(s, req, err);
        goto out;
    }
    r->used = 1;
    r->status = RUNNING;
    r->total = total;
    r->cli = cli;
    cli = NULL;
    r->seq = ++t->seq;
    mh_info("replay %s started (pid %d): %s", rid, (int)r->pid, r->cli);
    api_reply(s, req, 202, replay_json(r));
out:
    free(cli);
    free(from);
    free(until);
    json_decref(body);
    api_query_clear(&p);
}

/* A running replay's progress, read from its checkpoint (replay_checkpoint.c writes it
 * after each committed batch) on the pool. */
struct progress_call {
    struct api_job job; /* first: the pool hands it back */
    struct api_server *s;
    struct evhttp_request *req;
    char id[24];
    json_t *progress; /* NULL: none stored yet, or PostgreSQL failed (logged) */
};

static void progress_run(struct api_job *job, struct supp_store *st)
{
    struct progress_call *c = (struct progress_call *)job;
    char err[512], rid[32];
    if (supp_store_ensure(st, err, sizeof(err)) < 0) {
        mh_debug("replay progress: %s", err);
        return;
    }
    snprintf(rid, sizeof(rid), "api-%s", c->id);
    const char *params[] = {rid};
    PGresult *res = PQexecParams(st->pg, "SELECT progress::text FROM mh_replay_checkpoints "
                                         "WHERE replay_id = $1", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        c->progress = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    else if (PQresultStatus(res) != PGRES_TUPLES_OK)
        mh_debug("replay progress: %s", PQerrorMessage(st->pg));
    PQclear(res);
}

static struct replay *find(struct api_replays *t, const char *id)
{
    for (size_t i = 0; i < REPLAYS_KEPT; i++)
        if (t->r[i].used && !strcmp(t->r[i].id, id)) return &t->r[i];
    return NULL;
}

static void progress_done(struct api_job *job)
{
    struct progress_call *c = (struct progress_call *)job;
    struct replay *r = find(api_server_replays(c->s), c->id);
    if (!r) {
        api_reply_error(c->s, c->req, 404, "no such replay (only the most recent ones are kept)");
    } else {
        if (r->status == RUNNING && c->progress) {
            r->done = json_integer_value(json_object_get(c->progress, "records"));
            r->emitted = json_integer_value(json_object_get(c->progress, "events_written"));
            r->dead_letters = json_integer_value(json_object_get(c->progress, "dead_letters"));
        }
        api_reply(c->s, c->req, 200, replay_json(r));
    }
    json_decref(c->progress);
    free(c);
}

void api_replay_get(struct api_server *s, struct evhttp_request *req,
                    const struct mh_api_token *tok, const char *id)
{
    static const char *const allowed[] = {NULL};
    struct api_query p = {0};
    struct api_replays *t = api_server_replays(s);
    if (api_params(s, req, &p, allowed) < 0) goto out;
    if (!tok->operator) {
        api_reply_error(s, req, 403, "replays need an operator token");
        goto out;
    }
    struct replay *r = find(t, id);
    if (r && r->status == RUNNING) {
        struct progress_call *c = mh_calloc(1, sizeof(*c));
        c->job.run = progress_run;
        c->job.done = progress_done;
        c->s = s;
        c->req = req;
        snprintf(c->id, sizeof(c->id), "%s", r->id);
        if (api_pool_submit(api_server_pool(s), &c->job) == 0) goto out;
        free(c); /* the pool is full: the progress known so far */
    }
    if (r) {
        api_reply(s, req, 200, replay_json(r));
        goto out;
    }
    api_reply_error(s, req, 404, "no such replay (only the most recent ones are kept)");
out:
    api_query_clear(&p);
}
