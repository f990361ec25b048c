/*
 * console.h — the operator console's static files (api/console/), served by mailhook-api
 * under /console/ (console.c; docs/console.md).
 */
#ifndef MH_API_CONSOLE_H
#define MH_API_CONSOLE_H

#include <event2/http.h>

#include "mailhook/config.h"

struct console_file {
    const char *name;         /* file name in the console directory */
    const char *content_type;
};

/*
 * The file a request path names: "/console/" is index.html, "/console/<name>" one of a
 * fixed set of names. NULL for anything else (other names, sub-directories, "..",
 * percent-encoded tricks): only those names ever reach the file system.
 */
const struct console_file *api_console_file(const char *path);

/*
 * The directory the files are read from: [api] console_dir, else the installed share
 * directory when it holds index.html, else the source tree's api/console.
 */
const char *api_console_dir(const struct mh_config *cfg);

/*
 * Answers a request for "/console" or "/console/...": the file (GET, HEAD), a redirect
 * from "/console" to "/console/", 404 or 405. No token is needed: the pages hold no data,
 * every data call they make carries the operator's token.
 */
void api_console_serve(const struct mh_config *cfg, struct evhttp_request *req, const char *path);

#endif
