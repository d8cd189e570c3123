/* web/web.h: the page at `/`, where a person watches the sandboxes their token may reach.
 *
 * Served by cellblock itself: three static files (web/assets/, compiled into the binary) on a
 * public route, and a small JSON API under /ui/api that acts for the request's principal
 * (http_request_principal: the token's, or the login cookie's tenant). The page logs in by
 * POSTing the token once to /ui/api/login, which answers with a login cookie
 * (http_login_cookie); after that the cookie authenticates the API and the Jupyter API's
 * channels WebSocket, where the page watches a kernel's output live. docs/page.md has the
 * routes and what each answers.
 *
 * Everything here goes through the engine's public headers (the kg/ headers), the fleet's and
 * the HTTP server's. Every call comes from the gateway's loop thread.
 */
#ifndef WEB_WEB_H
#define WEB_WEB_H

#include "cb/error.h"
#include "http/http.h"
#include "kg/gateway.h"

typedef struct web web_t;

typedef struct {
    const char *lab_url; /* where `cellblock lab` serves JupyterLab ("http://127.0.0.1:8890"):
                            the page links {lab_url}/cellblock/open/{kernel_id}. NULL or "":
                            it shows the command of docs/jupyterlab.md instead */
} web_opts_t;

/* Route `/` (the assets; public) and /ui/api (the JSON API) on http (borrowed; must outlive
 * the object; before http_server_start). gw is borrowed and must outlive it too. Caller owns
 * return value. */
web_t *web_new(kg_gateway_t *gw, http_server_t *http, const web_opts_t *opts, cb_error_t *err);

/* Accepts NULL; nulls the caller's pointer. */
void web_destroy(web_t **self_p);

#endif
