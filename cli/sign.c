/*
 * sign.c — `mailhook sign`: prints a curl command that posts a file to a source exactly
 * as its provider would, with valid signature headers (or token / Basic credentials).
 * For trying a source by hand and for tests. The command contains the signature, never
 * the secret itself. A scheme that signs inside the body (SNS, Mailgun) returns a new body; the
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
#include "mailhook/timeutil.h"

static const char usage[] =
    "usage: mailhook [--config FILE] sign --source NAME [--url URL] [--key PEM] BODYFILE\n"
    "\n"
    "Prints a curl command that posts BODYFILE to the source with the headers its\n"
    "provider would send. --url defaults to http://<[ingest] listen>/v1/webhooks/NAME;\n"
    "--key is the private key for providers that sign with one (Postal, Ark, SendGrid,\n"
    "SES). For SES the body is re-signed (an SNS message) or wrapped in a new SNS\n"
    "Notification (anything else); for Mailgun its signature block is re-signed, stamped\n"
    "now. Then the command posts that body.\n";

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
