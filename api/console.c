/*
 * console.c — serves the operator console (api/console/: index.html, app.js, app.css,
 * favicon.svg) under /console/ on mailhook-api's listener.
 *
 * Only the fixed names below are served, so a path can never reach another file. The
 * files are read on each request (they are small, and an upgrade needs no restart); an
 * ETag of size and modification time lets the browser revalidate cheaply. The
 * Content-Security-Policy allows nothing but this origin: no inline script or style, no
 * other host.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console.h"
#include "mailhook/log.h"

#ifndef MH_CONSOLE_INSTALL_DIR
#define MH_CONSOLE_INSTALL_DIR "/usr/local/share/mailhook/console"
#endif

static const struct console_file files[] = {
    {"index.html", "text/html; charset=utf-8"},
    {"app.js", "text/javascript; charset=utf-8"},
    {"app.css", "text/css; charset=utf-8"},
    {"favicon.svg", "image/svg+xml"},
};

const struct console_file *api_console_file(const char *path)
{
    static const char prefix[] = "/console/";
    if (!path || strncmp(path, prefix, sizeof(prefix) - 1)) return NULL;
    const char *name = path + sizeof(prefix) - 1;
    if (!*name) return &files[0];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (!strcmp(name, files[i].name)) return &files[i];
    return NULL;
}

const char *api_console_dir(const struct mh_config *cfg)
{
    if (cfg->api.console_dir && *cfg->api.console_dir) return cfg->api.console_dir;
    if (access(MH_CONSOLE_INSTALL_DIR "/index.html", R_OK) == 0) return MH_CONSOLE_INSTALL_DIR;
    return MH_SOURCE_DIR "/api/console";
}

static void send_text(struct evhttp_request *req, int code, const char *text)
{
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add_printf(buf, "{\"error\":\"%s\"}\n", text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, NULL, buf);
    evbuffer_free(buf);
}

void api_console_serve(const struct mh_config *cfg, struct evhttp_request *req, const char *path)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(out, "Allow", "GET, HEAD");
        send_text(req, 405, "method not allowed (use GET, HEAD)");
        return;
    }
    if (!strcmp(path, "/console")) {
        /* Relative links in the page resolve against the directory. */
        evhttp_add_header(out, "Location", "/console/");
        send_text(req, 301, "moved to /console/");
        return;
    }
    const struct console_file *f = api_console_file(path);
    if (!f) {
        send_text(req, 404, "not found");
        return;
    }
    const char *dir = api_console_dir(cfg);
    char file[4096];
    if ((size_t)snprintf(file, sizeof(file), "%s/%s", dir, f->name) >= sizeof(file)) {
        send_text(req, 404, "not found");
        return;
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        mh_warn("console: cannot read %s: %s (set [api] console_dir)", file,
                fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        send_text(req, 404, "console not installed");
        return;
    }
    char etag[64];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtime);
    evhttp_add_header(out, "Content-Type", f->content_type);
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_add_header(out, "ETag", etag);
    evhttp_add_header(out, "Content-Security-Policy", "default-src 'self'");
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "X-Frame-Options", "DENY");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    if (inm && !strcmp(inm, etag)) {
        close(fd);
        evhttp_send_reply(req, 304, NULL, NULL);
        return;
    }
    struct evbuffer *buf = evbuffer_new();
    /* The buffer owns fd from here on, and closes it. */
    if (st.st_size == 0) close(fd);
    else if (evbuffer_add_file(buf, fd, 0, st.st_size) < 0) {
        evbuffer_free(buf);
        send_text(req, 500, "cannot read the console's file");
        return;
    }
    evhttp_send_reply(req, 200, NULL, buf);
    evbuffer_free(buf);
}
