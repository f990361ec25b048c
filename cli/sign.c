/*
 * sign.c — `mailhook sign`: prints a curl command that posts a file to a source exactly
 * as its provider would, with valid signature headers (or token / Basic credentials).
 * For trying a source by hand and for tests. The command contains the signature, never
 * the secret itself. A private key not given with --key is looked for next to the
 * source's key files (find_key). A scheme that signs inside the body (SNS, Mailgun) or
 * sends it otherwise (Mandrill's form, a re-stamped Postal body) returns a new body; the
 * command then pipes that body into curl instead of reading BODYFILE (printf is a shell
 * builtin, so a large body is not limited by the argument size of an exec).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mailhook/headers.h"
#include "mailhook/log.h"
#include "mailhook/provider.h"
#include "mailhook/provider_options.h"
#include "mailhook/timeutil.h"

static const char usage[] =
    "usage: mailhook sign --source NAME [--url URL] [--key PEM] BODYFILE [--config FILE]\n"
    "\n"
    "Prints a curl command that posts BODYFILE to the source with the headers its\n"
    "provider would send. --url defaults to http://<[ingest] listen>/v1/webhooks/NAME.\n"
    "\n"
    "Providers that sign with a private key (Postal, Ark, SendGrid, SES) need its\n"
    "private half. Without --key it is looked for, first found wins:\n"
    "  1. next to each key or certificate file the source configures (public_key_file,\n"
    "     certificate_file, ...): FILE.pub.pem -> FILE.pem, FILE.pub -> FILE, then\n"
    "     <that file's folder>/<provider>.pem (and <dir>/<provider>.pem for a\n"
    "     configured key folder);\n"
    "  2. $MH_LOCAL/keys/<provider>.pem.\n"
    "The local stack's keys (deploy/local: $MH_LOCAL/keys) follow this, so it needs no\n"
    "--key. A key that is not the private half of a configured key is refused.\n"
    "\n"
    "The body is sent as the provider would send it now: SES re-signs an SNS message\n"
    "(stamped now if its Timestamp is stale, addressed to the source's topic) or wraps\n"
    "anything else in a new Notification; Mailgun's signature block is re-signed,\n"
    "stamped now; Postal's and Ark's envelope timestamp is set to now when the source\n"
    "would find it stale; a JSON array for Mandrill is sent as mandrill_events=.\n";

/* Single-quotes s for a POSIX shell. */
static void shell_quote(FILE *out, const char *s)
{
    fputc('\'', out);
    for (; *s; s++) {
        if (*s == '\'') fputs("'\\''", out);
        else fputc(*s, out);
    }
    fputc('\'', out);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 65536, n = 0;
    unsigned char *buf = mh_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) buf = mh_realloc(buf, cap *= 2);
    }
    fclose(fp);
    *len = n;
    return buf;
}

static int readable(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp) fclose(fp);
    return fp != NULL;
}

/* Tries path as the private key: 1 (into out) when it is a readable file other than the
 * configured file it was derived from. */
static int try_key(const char *path, const char *from, char *out, size_t cap)
{
    if ((from && !strcmp(path, from)) || !readable(path)) return 0;
    snprintf(out, cap, "%s", path);
    return 1;
}

/* path with suffix replaced by repl into buf; 0 when path does not end in suffix. */
static int swap_suffix(const char *path, const char *suffix, const char *repl, char *buf,
                       size_t cap)
{
    size_t n = strlen(path), k = strlen(suffix);
    if (n <= k || strcmp(path + n - k, suffix)) return 0;
    return snprintf(buf, cap, "%.*s%s", (int)(n - k), path, repl) < (int)cap;
}

/*
 * The private key to sign with when --key is not given (the search `mailhook sign
 * --help` documents): 1 with its path in out, 0 when there is none.
 */
static int find_key(const struct mh_source *src, char *out, size_t cap)
{
    char buf[4096];
    const struct mh_option_def *defs = src->provider->options;
    for (const struct mh_kv *kv = src->options; kv; kv = kv->next) {
        const struct mh_option_def *d = mh_options_find(defs, kv->key);
        if (!d || (d->type != MH_OPT_FILE && d->type != MH_OPT_DIR)) continue;
        const char *p = kv->value;
        if (d->type == MH_OPT_FILE) {
            if (swap_suffix(p, ".pub.pem", ".pem", buf, sizeof(buf)) && try_key(buf, p, out, cap))
                return 1;
            if (swap_suffix(p, ".pub", "", buf, sizeof(buf)) && try_key(buf, p, out, cap))
                return 1;
            const char *slash = strrchr(p, '/');
            int dirlen = slash ? (int)(slash - p) : 1;
            snprintf(buf, sizeof(buf), "%.*s/%s.pem", dirlen, slash ? p : ".", src->provider->name);
        } else {
            snprintf(buf, sizeof(buf), "%s/%s.pem", p, src->provider->name);
        }
        if (try_key(buf, p, out, cap)) return 1;
    }
    const char *local = getenv("MH_LOCAL");
    if (local && *local) {
        snprintf(buf, sizeof(buf), "%s/keys/%s.pem", local, src->provider->name);
        if (try_key(buf, NULL, out, cap)) return 1;
    }
    return 0;
}

int cmd_sign(struct mh_config *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        {"source", required_argument, NULL, 's'},
        {"url", required_argument, NULL, 'u'},
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *source = NULL, *url = NULL, *key = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:u:k:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': source = optarg; break;
        case 'u': url = optarg; break;
        case 'k': key = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!cfg || !source || optind != argc - 1) {
        fputs(usage, stderr);
        return 2;
    }
    const char *file = argv[optind];
    const struct mh_source *src = mh_config_source(cfg, source);
    if (!src) {
        fprintf(stderr, "mailhook sign: no source \"%s\" in %s\n", source, cfg->path);
        return 1;
    }
    if (!src->provider->sign) {
        fprintf(stderr, "mailhook sign: provider %s cannot sign requests\n", src->provider->name);
        return 1;
    }
    size_t len = 0;
    unsigned char *body = slurp(file, &len);
    if (!body) {
        fprintf(stderr, "mailhook sign: cannot read %s\n", file);
        return 1;
    }
    char urlbuf[4096];
    if (url) snprintf(urlbuf, sizeof(urlbuf), "%s", url);
    else snprintf(urlbuf, sizeof(urlbuf), "http://%s/v1/webhooks/%s", cfg->ingest.listen, source);

    char found[4096];
    if (!key && find_key(src, found, sizeof(found))) key = found;

    struct mh_headers headers = {0};
    char err[512] = "";
    struct mh_sign_req sr = {
        .body = body,
        .body_len = len,
        .now_ms = mh_now_ms(),
        .private_key_file = key,
        .headers = &headers,
        .url = urlbuf,
        .url_cap = sizeof(urlbuf),
    };
    int rc = 1;
    if (src->provider->sign(src, &sr, err, sizeof(err)) < 0) {
        fprintf(stderr, "mailhook sign: %s\n", err);
        goto out;
    }
    if (sr.new_body) {
        /* The body must be text without NUL to travel inside a shell word. */
        if (memchr(sr.new_body, '\0', sr.new_body_len)) {
            fprintf(stderr, "mailhook sign: the signed body holds a NUL byte\n");
            goto out;
        }
        fputs("printf '%s' ", stdout);
        char *text = mh_strndup((const char *)sr.new_body, sr.new_body_len);
        shell_quote(stdout, text);
        free(text);
        fputs(" | ", stdout);
    }
    fputs("curl -sS -X POST ", stdout);
    shell_quote(stdout, urlbuf);
    if (!mh_headers_get(&headers, "content-type"))
        fputs(" -H 'Content-Type: application/json'", stdout);
    for (size_t i = 0; i < headers.n; i++) {
        char line[8192];
        snprintf(line, sizeof(line), "%s: %s", headers.v[i].name, headers.v[i].value);
        fputs(" -H ", stdout);
        shell_quote(stdout, line);
    }
    fputs(" --data-binary ", stdout);
    char at[4200];
    snprintf(at, sizeof(at), "@%s", sr.new_body ? "-" : file);
    shell_quote(stdout, at);
    fputc('\n', stdout);
    rc = 0;
out:
    mh_headers_clear(&headers);
    free(sr.new_body);
    free(body);
    return rc;
}
