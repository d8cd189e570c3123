/* http/test_http.c: the HTTP module against real clients.
 *
 * The server runs on a zloop in this process, on 127.0.0.1:0, with a handful of test routes;
 * the clients are child processes (curl, and test_http_client.py with python3's http.client,
 * raw sockets and the websocket package), started from the loop so the server keeps serving
 * while they run. Every wait has a deadline: a client that overruns is killed and fails.
 * test_http_client.py prints TAP-style "ok - ..." / "not ok - ..." lines that are counted
 * here; what only the server can see (on_close calls, stream ordering) is checked here.
 *
 *     test_http             run the tests
 *     test_http --serve     serve the test routes until killed (prints URL and token) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "http/http.h"

extern char **environ;

typedef struct {
    zloop_t *loop;
    http_server_t *server;
    /* /sse: the open stream and how many events it sent */
    http_request_t *sse;
    int sse_sent;
    int sse_closed;
    /* /hold: streams that never end */
    http_request_t *hold[4];
    int hold_open;
    int hold_closed;
    /* /late */
    http_request_t *late;
    /* WebSockets */
    int ws_open;
    int ws_closed;
    http_ws_t *last_ws;
} test_t;

/* ---- routes --------------------------------------------------------------------------------- */

static void s_echo(http_request_t *req, void *arg)
{
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    json_auto_t *j =
        json_pack("{s:s, s:s, s:s#, s:i}", "method", http_request_method(req), "path",
                  http_request_path(req), "body", body, (int)len, "body_len", (int)len);
    const char *names[] = {"x", "y", "token", "a b"};
    for (size_t i = 0; j && i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = http_request_query(req, names[i]);
        if (v)
            json_object_set_new(j, names[i], json_string(v));
    }
    const char *hnames[] = {"Content-Type",  "Mcp-Session-Id", "mcp-protocol-version",
                            "Last-Event-ID", "Accept",         "Authorization",
                            "Host",          "User-Agent"};
    json_t *h = json_object();
    for (size_t i = 0; h && i < sizeof(hnames) / sizeof(hnames[0]); i++) {
        const char *v = http_request_header(req, hnames[i]);
        if (v)
            json_object_set_new(h, hnames[i], json_string(v));
    }
    if (j && h)
        json_object_set_new(j, "headers", h);
    const cb_principal_t *who = http_request_principal(req);
    if (j)
        json_object_update_new(j,
                               json_pack("{s:s, s:b}", "tenant", who->tenant, "admin", who->admin));
    if (!j) {
        http_respond_error(req, 500, "json");
        return;
    }
    http_respond_json(req, 200, j, (const char *[]){"X-Test", "yes", NULL});
}

static int s_late_fire(zloop_t *loop, int timer_id, void *arg)
{
    test_t *t = arg;
    if (t->late) {
        http_respond(t->late, 200, "text/plain", NULL, "late\n", 5);
        t->late = NULL;
    }
    return 0;
}

static void s_late_closed(http_request_t *req, void *arg)
{
    test_t *t = arg;
    if (t->late == req)
        t->late = NULL;
}

static void s_late(http_request_t *req, void *arg)
{
    test_t *t = arg;
    if (t->late) {
        http_respond_error(req, 409, "one late request at a time");
        return;
    }
    t->late = req;
    http_request_on_close(req, s_late_closed, t);
    zloop_timer(t->loop, 300, 1, s_late_fire, t);
}

static void s_sse_closed(http_request_t *req, void *arg)
{
    test_t *t = arg;
    if (t->sse == req)
        t->sse = NULL;
    t->sse_closed++;
}

static void s_sse_event(test_t *t)
{
    char ev[64];
    int n = snprintf(ev, sizeof(ev), "id: %d\ndata: event %d\n\n", t->sse_sent, t->sse_sent);
    http_stream_write(t->sse, ev, (size_t)n);
    t->sse_sent++;
}

/* GET /sse: a stream; one event now, the next each time /sse/ack arrives, the end after 3. */
static void s_sse(http_request_t *req, void *arg)
{
    test_t *t = arg;
    if (strcmp(http_request_path(req), "/sse/ack") == 0) {
        if (!t->sse) {
            http_respond_error(req, 409, "no stream open");
            return;
        }
        if (t->sse_sent < 3) {
            s_sse_event(t);
        } else {
            http_stream_end(t->sse);
            t->sse = NULL;
        }
        http_respond(req, 204, NULL, NULL, NULL, 0);
        return;
    }
    if (t->sse) {
        http_respond_error(req, 409, "one stream at a time");
        return;
    }
    t->sse = req;
    t->sse_sent = 0;
    http_request_on_close(req, s_sse_closed, t);
    http_stream_begin(req, 200, "text/event-stream",
                      (const char *[]){"Cache-Control", "no-cache", NULL});
    s_sse_event(t);
}

static void s_hold_closed(http_request_t *req, void *arg)
{
    test_t *t = arg;
    for (int i = 0; i < 4; i++)
        if (t->hold[i] == req)
            t->hold[i] = NULL;
    t->hold_open--;
    t->hold_closed++;
}

/* GET /hold: a stream that sends one line and never ends. */
static void s_hold(http_request_t *req, void *arg)
{
    test_t *t = arg;
    int slot = -1;
    for (int i = 0; i < 4 && slot < 0; i++)
        if (!t->hold[i])
            slot = i;
    if (slot < 0) {
        http_respond_error(req, 503, "too many holds");
        return;
    }
    t->hold[slot] = req;
    t->hold_open++;
    http_request_on_close(req, s_hold_closed, t);
    http_stream_begin(req, 200, "text/plain", NULL);
    http_stream_write(req, "held\n", 5);
}

/* /login: a login cookie for whoever asks (the page's login does the same). */
static void s_login(http_request_t *req, void *arg)
{
    test_t *t = arg;
    cleanup_free char *cookie = http_login_cookie(t->server, req, 0);
    if (!cookie) {
        http_respond_error(req, 403, "no login for this principal");
        return;
    }
    http_respond(req, 204, NULL, (const char *[]){"Set-Cookie", cookie, NULL}, NULL, 0);
}

static void s_ws_message(http_ws_t *ws, const void *data, size_t len, bool binary, void *arg)
{
    if (!binary && len == 6 && memcmp(data, "whoami", 6) == 0) {
        const cb_principal_t *who = http_request_principal(http_ws_request(ws));
        char me[128];
        int n = snprintf(me, sizeof(me), "%s %s", who->tenant, who->admin ? "admin" : "tenant");
        http_ws_send(ws, me, (size_t)n, false);
        return;
    }
    if (!binary && len == 8 && memcmp(data, "close-me", 8) == 0) {
        test_t *t = arg;
        if (t->last_ws == ws)
            t->last_ws = NULL;
        t->ws_open--;
        http_ws_close(ws, 4001, "bye");
        return;
    }
    http_ws_send(ws, data, len, binary);
}

static void s_ws_closed(http_ws_t *ws, void *arg)
{
    test_t *t = arg;
    if (t->last_ws == ws)
        t->last_ws = NULL;
    t->ws_open--;
    t->ws_closed++;
}

static void s_ws_open(http_ws_t *ws, void *arg)
{
    test_t *t = arg;
    t->ws_open++;
    t->last_ws = ws;
    http_ws_set_handlers(ws, s_ws_message, s_ws_closed, t);
    const char *sp = http_ws_subprotocol(ws);
    char hello[160];
    int n = snprintf(hello, sizeof(hello), "hello %s %s", sp ? sp : "-",
                     http_request_path(http_ws_request(ws)));
    http_ws_send(ws, hello, (size_t)n, false);
}

static http_server_t *s_server_new(test_t *t, const http_config_t *cfg, cb_error_t *err)
{
    http_server_t *s = http_server_new(t->loop, cfg, err);
    if (!s)
        return NULL;
    if (http_server_route(s, "/echo", s_echo, NULL, t, err) < 0 ||
        http_server_route(s, "/late", s_late, NULL, t, err) < 0 ||
        http_server_route(s, "/sse", s_sse, NULL, t, err) < 0 ||
        http_server_route(s, "/hold", s_hold, NULL, t, err) < 0 ||
        http_server_route(s, "/ws", s_echo, s_ws_open, t, err) < 0 ||
        http_server_route(s, "/nows", s_echo, NULL, t, err) < 0 ||
        http_server_route(s, "/login", s_login, NULL, t, err) < 0 ||
        http_server_route(s, "/pub", s_echo, s_ws_open, t, err) < 0 ||
        http_server_route_public(s, "/pub", err) < 0 ||
        http_server_route(s, "/sbx", s_echo, NULL, t, err) < 0 ||
        http_server_route_sandbox_tokens(s, "/sbx", err) < 0 ||
        http_server_subprotocol(s, "v1.test.example", err) < 0 ||
        http_server_subprotocol(s, "v2.test.example", err) < 0 || http_server_start(s, err) < 0) {
        http_server_destroy(&s);
        return NULL;
    }
    return s;
}

/* ---- running clients ------------------------------------------------------------------------ */

typedef struct {
    pid_t pid;
    int fd;
    cb_buf_t out;
    bool eof, exited, timed_out;
    int status;
} child_t;

static int s_child_readable(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    child_t *c = arg;
    char buf[4096];
    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n > 0) {
        cb_buf_append(&c->out, buf, (size_t)n);
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    c->eof = true;
    zloop_poller_end(loop, item);
    return -1; /* back to s_wait_child */
}

static int s_tick(zloop_t *loop, int timer_id, void *arg)
{
    return -1; /* wake s_wait_* to check its condition */
}

/* Run the loop until cond(arg) or the deadline. Returns cond's last value. */
static bool s_run_until(test_t *t, bool (*cond)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = cb_now_ms() + timeout_ms;
    while (!cond(arg) && cb_now_ms() < deadline) {
        int id = zloop_timer(t->loop, 10, 1, s_tick, NULL);
        zloop_start(t->loop);
        zloop_timer_end(t->loop, id);
    }
    return cond(arg);
}

static bool s_child_done(void *arg)
{
    child_t *c = arg;
    if (c->eof && !c->exited) {
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->exited = true;
            c->status = st;
        }
    }
    return c->eof && c->exited;
}

/* Start argv with stdout (and stderr) into a pipe, run the loop until it exits or timeout_ms
 * passes (then it is killed). Returns the exit status, -1 on timeout; output in *out (caller
 * frees with cb_buf_free). */
static int s_run(test_t *t, char *const argv[], int timeout_ms, cb_buf_t *out)
{
    child_t c = {.fd = -1};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        CB_DIAG("pipe2: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    int rc = posix_spawnp(&c.pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        CB_DIAG("spawn %s: %s", argv[0], strerror(rc));
        close(fds[0]);
        return -1;
    }
    c.fd = fds[0];
    fcntl(c.fd, F_SETFL, O_NONBLOCK);
    zmq_pollitem_t item = {.fd = c.fd, .events = ZMQ_POLLIN};
    zloop_poller(t->loop, &item, s_child_readable, &c);
    zloop_poller_set_tolerant(t->loop,
                              &item); /* a pipe's POLLHUP is ZMQ_POLLERR: still read to EOF */
    if (!s_run_until(t, s_child_done, &c, timeout_ms)) {
        CB_DIAG("%s timed out after %d ms (eof %d)", argv[0], timeout_ms, c.eof);
        c.timed_out = true;
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &c.status, 0);
        if (!c.eof)
            zloop_poller_end(t->loop, &item);
    }
    close(c.fd);
    *out = c.out;
    if (c.timed_out)
        return -1;
    return WIFEXITED(c.status) ? WEXITSTATUS(c.status) : 128 + WTERMSIG(c.status);
}

/* Run the Python client on one scenario and turn its "ok - " / "not ok - " lines into ours. */
static void s_py(test_t *t, const char *scenario, const char *extra, int timeout_ms)
{
    const char *token = http_server_token(t->server);
    char *argv[] = {"/usr/bin/python3",
                    TEST_HTTP_CLIENT,
                    (char *)scenario,
                    (char *)http_server_url(t->server),
                    (char *)(token ? token : ""),
                    (char *)(extra ? extra : ""),
                    NULL};
    cb_buf_t out = {0};
    int rc = s_run(t, argv, timeout_ms, &out);
    int lines = 0;
    char *save = NULL;
    for (char *line = out.data ? strtok_r(out.data, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "ok - ", 5) == 0) {
            CB_OK(1, "%s: %s", scenario, line + 5);
            lines++;
        } else if (strncmp(line, "not ok - ", 9) == 0) {
            CB_OK(0, "%s: %s", scenario, line + 9);
            lines++;
        } else {
            CB_DIAG("%s: %s", scenario, line);
        }
    }
    CB_OK(rc == 0 && lines > 0, "%s: client finished (exit %d, %d checks)", scenario, rc, lines);
    cb_buf_free(&out);
}

/* curl with the given arguments; returns its stdout+stderr ("" on none). Caller frees. */
static char *s_curl(test_t *t, int *rc, const char *const *args)
{
    char *argv[32];
    int n = 0;
    argv[n++] = "curl";
    argv[n++] = "-sS";
    argv[n++] = "--max-time";
    argv[n++] = "20";
    for (; args && *args && n < 30; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    cb_buf_t out = {0};
    *rc = s_run(t, argv, 30000, &out);
    if (!out.data)
        return strdup("");
    return out.data;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_config(test_t *t)
{
    cb_error_t err = {0};
    http_server_t *s =
        http_server_new(t->loop, &(http_config_t){.listen = "0.0.0.0:0", .no_auth = true}, &err);
    CB_OK(!s && strstr(err.msg, "loopback"), "no_auth refused on 0.0.0.0 (%s)", err.msg);
    http_server_destroy(&s);
    s = http_server_new(t->loop, &(http_config_t){.listen = "localhost:0", .no_auth = true}, &err);
    CB_OK(s && !http_server_token(s), "no_auth accepted on localhost, no token");
    http_server_destroy(&s);
    s = http_server_new(t->loop, &(http_config_t){.listen = "example.com:80"}, &err);
    CB_OK(!s, "a listen host name other than localhost is refused (%s)", err.msg);
    s = http_server_new(t->loop, &(http_config_t){.listen = "127.0.0.1:0"}, &err);
    const char *tok = s ? http_server_token(s) : NULL;
    CB_OK(tok && strlen(tok) == 64 && strspn(tok, "0123456789abcdef") == 64,
          "a generated token is 64 hex chars");
    http_server_destroy(&s);
    http_server_destroy(&s);
    CB_OK(1, "destroy accepts NULL");
}

static void test_curl(test_t *t)
{
    const char *url = http_server_url(t->server);
    const char *token = http_server_token(t->server);
    cleanup_free char *echo = cb_strdup_printf("%s/echo/a%%20b?x=1&y=two%%26three", url);
    cleanup_free char *bearer = cb_strdup_printf("Authorization: Bearer %s", token);
    cleanup_free char *tokhdr = cb_strdup_printf("Authorization: token %s", token);
    int rc;
    cleanup_free char *o1 = s_curl(t, &rc, (const char *[]){"-w", "\n%{http_code}", echo, NULL});
    CB_OK(rc == 0 && strstr(o1, "\n401") && strstr(o1, "\"reason\":\"Unauthorized\""),
          "curl without token: 401 JSON (rc %d: %s)", rc, o1);
    cleanup_free char *o2 = s_curl(t, &rc, (const char *[]){"-H", bearer, echo, NULL});
    CB_OK(rc == 0 && strstr(o2, "\"path\":\"/echo/a b\"") && strstr(o2, "\"x\":\"1\"") &&
              strstr(o2, "\"y\":\"two&three\"") && !strstr(o2, "Authorization"),
          "curl Bearer: path and query decoded, Authorization not passed on (%s)", o2);
    cleanup_free char *o3 = s_curl(t, &rc,
                                   (const char *[]){"-H", tokhdr, "-H", "Content-Type: text/plain",
                                                    "--data-binary", "hi there", echo, NULL});
    CB_OK(rc == 0 && strstr(o3, "\"method\":\"POST\"") && strstr(o3, "\"body\":\"hi there\""),
          "curl 'token' scheme POST with a body (rc %d: %s)", rc, o3);
    cleanup_free char *late = cb_strdup_printf("%s/late", url);
    int64_t t0 = cb_now_ms();
    cleanup_free char *o4 = s_curl(t, &rc, (const char *[]){"-H", bearer, late, NULL});
    CB_OK(rc == 0 && strcmp(o4, "late\n") == 0 && cb_now_ms() - t0 >= 290,
          "a handler answering 300 ms later (rc %d: %s)", rc, o4);
}

static bool s_hold_closed_one(void *arg)
{
    test_t *t = arg;
    return t->hold_closed >= 1 && t->hold_open == 0;
}

static void test_disconnect(test_t *t)
{
    t->hold_closed = 0;
    s_py(t, "disconnect", NULL, 30000);
    CB_OK(s_run_until(t, s_hold_closed_one, t, 10000),
          "client gone mid-stream: on_close called once (%d)", t->hold_closed);
}

static bool s_ws_all_closed(void *arg)
{
    test_t *t = arg;
    return t->ws_open == 0;
}

typedef struct {
    test_t *t;
    child_t c;
} linger_t;

static bool s_linger_ready(void *arg)
{
    linger_t *l = arg;
    return (l->c.out.data && strstr(l->c.out.data, "READY") && l->t->hold_open == 1 &&
            l->t->ws_open == 1) ||
           l->c.eof;
}

/* http_server_destroy with a stream and a WebSocket open: both owners hear on_close, and the
 * client sees both connections closed. */
static void test_destroy(test_t *t)
{
    s_run_until(t, s_ws_all_closed, t, 5000);
    t->hold_closed = t->ws_closed = 0;
    linger_t l = {.t = t, .c = {.fd = -1}};
    const char *token = http_server_token(t->server);
    char *argv[] = {"/usr/bin/python3",
                    TEST_HTTP_CLIENT,
                    "linger",
                    (char *)http_server_url(t->server),
                    (char *)token,
                    "",
                    NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    int rc = posix_spawn(&l.c.pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        CB_OK(0, "spawn the linger client");
        return;
    }
    l.c.fd = fds[0];
    fcntl(l.c.fd, F_SETFL, O_NONBLOCK);
    zmq_pollitem_t item = {.fd = l.c.fd, .events = ZMQ_POLLIN};
    zloop_poller(t->loop, &item, s_child_readable, &l.c);
    zloop_poller_set_tolerant(t->loop, &item);
    bool ready = s_run_until(t, s_linger_ready, &l, 20000) && !l.c.eof;
    CB_OK(ready, "linger: a stream and a WebSocket are open");
    http_server_destroy(&t->server);
    CB_OK(t->hold_closed == 1 && t->ws_closed == 1 && t->hold_open == 0 && t->ws_open == 0,
          "destroy delivered on_close to the stream (%d) and the WebSocket (%d)", t->hold_closed,
          t->ws_closed);
    if (!s_run_until(t, s_child_done, &l.c, 30000)) {
        kill(l.c.pid, SIGKILL);
        waitpid(l.c.pid, NULL, 0);
        if (!l.c.eof)
            zloop_poller_end(t->loop, &item);
        CB_OK(0, "linger client finished");
    } else {
        int lines = 0;
        char *save = NULL;
        for (char *line = l.c.out.data ? strtok_r(l.c.out.data, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "ok - ", 5) == 0 || strncmp(line, "not ok - ", 9) == 0) {
                CB_OK(line[0] == 'o', "linger: %s", strchr(line, '-') + 2);
                lines++;
            } else if (strcmp(line, "READY") != 0) {
                CB_DIAG("linger: %s", line);
            }
        }
        CB_OK(WIFEXITED(l.c.status) && WEXITSTATUS(l.c.status) == 0 && lines == 2,
              "linger client finished");
    }
    close(l.c.fd);
    cb_buf_free(&l.c.out);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("TEST_HTTP_DEBUG"))
        cb_log_set_level(CB_LOG_DEBUG);
    test_t t = {0};
    t.loop = zloop_new();
    cb_error_t err = {0};
    const char *const allowed_hosts[] = {"allowed.example", NULL};
    /* Two tenants (the "tenants" scenario knows their tokens). */
    static const http_tenant_token_t tenants[] = {{"alice-token-0123456789", "alice", false},
                                                  {"bob-token-0123456789abc", "bob", true}};
    http_config_t cfg = {.listen = "127.0.0.1:0",
                         .tenants = tenants,
                         .tenant_count = 2,
                         .max_body_bytes = 1024 * 1024,
                         .max_ws_message_bytes = 256 * 1024,
                         .head_timeout_ms = 5000, /* also a chunked body's idle deadline */
                         .allowed_hosts = allowed_hosts};
    if (argc > 1 && strcmp(argv[1], "--serve") == 0) {
        cb_log_set_level(CB_LOG_DEBUG);
        if (argc > 2)
            cfg.listen = argv[2];
        t.server = s_server_new(&t, &cfg, &err);
        if (!t.server) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        printf("%s %s\n", http_server_url(t.server), http_server_token(t.server));
        fflush(stdout);
        zloop_start(t.loop);
        http_server_destroy(&t.server);
        zloop_destroy(&t.loop);
        return 0;
    }
    if (access("/usr/bin/python3", X_OK) != 0)
        CB_SKIP_ALL("no /usr/bin/python3");

    test_config(&t);
    t.server = s_server_new(&t, &cfg, &err);
    CB_OK(t.server != NULL, "server started (%s)", t.server ? http_server_url(t.server) : err.msg);
    if (!t.server)
        return cb_tap_done();
    test_curl(&t);
    s_py(&t, "auth", NULL, 60000);
    s_py(&t, "tenants", NULL, 60000);
    s_py(&t, "origin", NULL, 60000);
    s_py(&t, "notfound", NULL, 60000);
    char limit[32];
    snprintf(limit, sizeof(limit), "%zu", cfg.max_body_bytes);
    s_py(&t, "body", limit, 60000);
    s_py(&t, "chunked", limit, 90000);
    s_py(&t, "keepalive", NULL, 60000);
    s_py(&t, "sse", NULL, 60000);
    CB_OK(t.sse == NULL && t.sse_sent == 3, "SSE: the stream was ended by the handler (%d events)",
          t.sse_sent);
    test_disconnect(&t);
    snprintf(limit, sizeof(limit), "%zu", cfg.max_ws_message_bytes);
    s_py(&t, "ws", limit, 60000);
    s_py(&t, "ws_rules", NULL, 60000);
    s_py(&t, "malformed", NULL, 60000);
    s_py(&t, "many", "50", 90000);
    CB_OK(s_run_until(&t, s_ws_all_closed, &t, 10000),
          "every WebSocket closed on the server (%d open)", t.ws_open);
    test_destroy(&t);

    http_server_destroy(&t.server);
    zloop_destroy(&t.loop);
    return cb_tap_done();
}
