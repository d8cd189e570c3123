/* bench_mcp.c: the MCP server's side of the execute benchmark.
 *
 * The goal: an MCP code_execute round trip of a trivial cell adds under 0.1 ms at p50 over
 * the gateway's own execute (bench_gateway) and is compared with jupyter_client
 * (bench_jupyter_client.py); bench/run runs all three in one run and bench/report.py sets them
 * side by side. This program is an MCP client, like any other: it spawns the real server binary,
 * `cellblock mcp --no-sandbox` (kernels as plain processes, as the other two benchmarks run them;
 * --sandbox drops the flag, for the sandboxed case), talks JSON-RPC 2.0 to it over pipes, one
 * message per line, and uses no part of the MCP library. It measures:
 *
 *   initialize_ms   initialize until its reply (notifications/initialized follows, untimed).
 *   first_call_ms   the first code_execute: it creates the session's default sandbox and starts
 *                   its kernel, so it is mostly a kernel start. Untimed warm-up calls follow.
 *   exec_ms         --n code_execute calls of --code (after --warmup), each from writing the
 *                   request line to reading the whole reply line. Every reply is parsed (jansson,
 *                   after the clock stops) and must be a result with isError false and
 *                   structuredContent.status "ok"; anything else ends the run with an error.
 *   outside_execution_ms   per call, exec_ms minus the reply's structuredContent.duration_ms (the
 *                   gateway's own time for the execution: execute_request sent until done). What
 *                   the MCP layer, the pipes and this client add, paired call by call, so the
 *                   kernel's own jitter mostly cancels out.
 *   ping_ms         --n JSON-RPC pings after the executions: the floor of the stdio transport and
 *                   the session's dispatch, with no tool and no kernel behind it.
 *   mcp_server_cpu_us_per_exec   the server process's utime+stime (/proc/PID/stat, all its
 *                   threads; its kernel is a child and not counted) over the timed loop, per
 *                   execution, split as mcp_server_user_... and mcp_server_sys_...; the same as
 *                   bench_gateway's gateway_cpu_us_per_exec plus what the MCP layer costs. /proc
 *                   counts in clock ticks (10 ms at USER_HZ 100), so these are coarse over a
 *                   short loop; mcp_server_sched_cpu_us_per_exec sums the threads' schedstat (ns)
 *                   instead, and mcp_server_sched_cpu_us_per_ping does the same for the pings.
 *
 * Blocking I/O on the pipes (poll with a deadline, --timeout per reply); the timed loop is also
 * bounded by --max-seconds. Takes bench_gateway's options, so bench/run passes one argument list
 * (--kernels is accepted and ignored: the server starts one kernel). Prints one JSON object on
 * stdout (jansson); progress and errors go to stderr, where the server's stderr also goes. At the
 * end the server's stdin is closed, the clean way to stop it (it deletes its sandbox); it is sent
 * SIGTERM, then SIGKILL, if it does not exit in time. Percentiles are nearest-rank, as in the
 * other benchmarks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cb/cleanup.h"
#include "cb/util.h"
#include "stats.h"

extern char **environ;

#define S_PROTOCOL "2025-11-25"
#define S_READ_CHUNK 65536
#define S_EXIT_WAIT_MS 15000 /* for the server to exit once its stdin is closed */

typedef struct {
    int n;
    int warmup;
    const char *code;
    const char *cellblock; /* the server binary */
    bool sandbox;          /* run kernels in sandboxes (no --no-sandbox) */
    double max_seconds;
    int timeout_ms;
} s_args_t;

/* The server process and our ends of its pipes. */
typedef struct {
    pid_t pid;
    int to_fd;   /* its stdin */
    int from_fd; /* its stdout */
    cb_buf_t in; /* bytes read from its stdout; in.data[in_off..] not yet consumed */
    size_t in_off;
    json_int_t next_id;
    size_t notifications; /* messages without our id, skipped */
    size_t last_request_bytes, last_reply_bytes;
} s_server_t;

/* One request's answer: the reply (owned) and the round trip. */
typedef struct {
    json_t *reply;
    double ms;
} s_answer_t;

/* µs rounded to 0.1 for printing, or null when not measured. Caller owns return value. */
static json_t *s_json_us(double us)
{
    return isnan(us) ? json_null() : json_real(round(us * 10) / 10);
}

/* ---- the server's CPU -------------------------------------------------------------------------- */

typedef struct {
    double user; /* seconds, from /proc/PID/stat (clock ticks) */
    double sys;
    double sched; /* seconds on a CPU, the sum of /proc/PID/task/TID/schedstat (ns) */
} s_cpu_t;

/* utime and stime of process pid (all its threads), in seconds; NAN when unreadable. */
static void s_proc_stat_cpu(pid_t pid, s_cpu_t *cpu)
{
    cpu->user = cpu->sys = NAN;
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    cleanup_fclose FILE *f = fopen(path, "re");
    if (!f || !fgets(line, sizeof line, f))
        return;
    /* The name (field 2) is in parentheses and may hold spaces: count fields after its end. */
    const char *p = strrchr(line, ')');
    unsigned long long utime, stime;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        return;
    double tck = (double)sysconf(_SC_CLK_TCK);
    cpu->user = (double)utime / tck;
    cpu->sys = (double)stime / tck;
}

/* The time every current thread of pid has spent on a CPU, in seconds (schedstat's first field,
 * in ns); NAN when unreadable. Threads that ended are not counted, so this is only right when the
 * same threads live throughout, as the server's do during a loop of executions. */
static double s_proc_sched_cpu(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    cleanup_closedir DIR *d = opendir(path);
    if (!d)
        return NAN;
    double ns = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char tpath[300];
        snprintf(tpath, sizeof tpath, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        cleanup_fclose FILE *f = fopen(tpath, "re");
        unsigned long long run_ns;
        if (!f || fscanf(f, "%llu", &run_ns) != 1)
            return NAN;
        ns += (double)run_ns;
    }
    return ns / 1e9;
}

static s_cpu_t s_server_cpu(const s_server_t *srv)
{
    s_cpu_t cpu;
    s_proc_stat_cpu(srv->pid, &cpu);
    cpu.sched = s_proc_sched_cpu(srv->pid);
    return cpu;
}

/* ---- the server process and its pipes -------------------------------------------------------- */

/* Start `cellblock mcp [--no-sandbox]` with its stdin and stdout on pipes; its stderr is ours. */
static int s_server_start(s_server_t *srv, const s_args_t *args)
{
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(from, O_CLOEXEC) < 0) {
        close(to[0]);
        close(to[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, from[1], STDOUT_FILENO);
    char *argv[] = {(char *)args->cellblock, "mcp", args->sandbox ? NULL : "--no-sandbox", NULL};
    /* As in bench_gateway.c: only silences debugpy's start-up warning on each kernel's stderr. */
    setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1", 1);
    int rc = posix_spawn(&srv->pid, args->cellblock, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(to[0]);
    close(from[1]);
    if (rc != 0) {
        close(to[1]);
        close(from[0]);
        srv->pid = -1;
        errno = rc;
        return -1;
    }
    srv->to_fd = to[1];
    srv->from_fd = from[0];
    return 0;
}

/* Close the server's stdin and wait for it to exit; SIGTERM, then SIGKILL, if it takes too long.
 * Returns its wait status, or -1 when there was no server. */
static int s_server_stop(s_server_t *srv)
{
    if (srv->to_fd >= 0)
        close(cb_steal_fd(&srv->to_fd));
    if (srv->pid <= 0)
        return -1;
    int status = 0;
    int64_t deadline = cb_now_ms() + S_EXIT_WAIT_MS;
    int sig = SIGTERM;
    for (;;) {
        pid_t r = waitpid(srv->pid, &status, WNOHANG);
        if (r == srv->pid || (r < 0 && errno != EINTR))
            break;
        if (cb_now_ms() > deadline) {
            fprintf(stderr, "bench_mcp: the server did not exit in %d ms; sending %s\n",
                    S_EXIT_WAIT_MS, sig == SIGTERM ? "SIGTERM" : "SIGKILL");
            kill(srv->pid, sig);
            if (sig == SIGKILL) {
                waitpid(srv->pid, &status, 0);
                break;
            }
            sig = SIGKILL;
            deadline = cb_now_ms() + 5000;
        }
        usleep(10000);
    }
    srv->pid = -1;
    if (srv->from_fd >= 0)
        close(cb_steal_fd(&srv->from_fd));
    cb_buf_free(&srv->in);
    return status;
}

static int s_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The next line from the server's stdout, NUL-terminated in place (without its newline) and
 * valid until the next call; NULL with a message on stderr at EOF, on error or at deadline_us. */
static char *s_read_line(s_server_t *srv, int64_t deadline_us, size_t *len)
{
    for (;;) {
        char *start = srv->in.data ? srv->in.data + srv->in_off : NULL;
        char *nl = start ? memchr(start, '\n', srv->in.len - srv->in_off) : NULL;
        if (nl) {
            *nl = '\0';
            *len = (size_t)(nl - start);
            srv->in_off += *len + 1;
            return start;
        }
        /* Keep only the unread part, then wait for more. */
        if (srv->in_off > 0) {
            size_t rest = srv->in.len - srv->in_off;
            memmove(srv->in.data, srv->in.data + srv->in_off, rest);
            srv->in.len = rest;
            srv->in_off = 0;
        }
        int64_t left_ms = (deadline_us - cb_now_us() + 999) / 1000;
        if (left_ms <= 0) {
            fprintf(stderr, "bench_mcp: no reply from the server in time\n");
            return NULL;
        }
        struct pollfd pfd = {.fd = srv->from_fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (pr < 0 && errno != EINTR) {
            perror("bench_mcp: poll");
            return NULL;
        }
        if (pr <= 0)
            continue;
        char chunk[S_READ_CHUNK];
        ssize_t n = read(srv->from_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "bench_mcp: the server closed its stdout%s%s\n", n < 0 ? ": " : "",
                    n < 0 ? strerror(errno) : " (it exited or crashed; see its messages above)");
            return NULL;
        }
        cb_buf_append(&srv->in, chunk, (size_t)n);
    }
}

/* Send one JSON-RPC message (stolen); for a request (with_id), wait for the reply with its id,
 * timing from writing the line to reading the reply's whole line. Messages without that id
 * (notifications) are counted and skipped. A JSON-RPC error fails, with its message on stderr. */
static int s_send(s_server_t *srv, const char *method, json_t *params, bool with_id, int timeout_ms,
                  s_answer_t *ans)
{
    json_auto_t *msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    json_int_t id = ++srv->next_id;
    if (!msg || (params && json_object_set_new(msg, "params", params) < 0) ||
        (with_id && json_object_set_new(msg, "id", json_integer(id)) < 0)) {
        fprintf(stderr, "bench_mcp: building the %s request failed\n", method);
        return -1;
    }
    cleanup_free char *body = json_dumps(msg, JSON_COMPACT);
    cleanup_free char *text = body ? cb_strdup_printf("%s\n", body) : NULL;
    if (!text) {
        fprintf(stderr, "bench_mcp: out of memory\n");
        return -1;
    }
    size_t len = strlen(text);
    srv->last_request_bytes = len;

    int64_t t0 = cb_now_us();
    if (s_write_all(srv->to_fd, text, len) < 0) {
        fprintf(stderr, "bench_mcp: writing the %s request failed: %s\n", method, strerror(errno));
        return -1;
    }
    if (!with_id)
        return 0;
    int64_t deadline = t0 + (int64_t)timeout_ms * 1000;
    for (;;) {
        size_t line_len;
        char *line = s_read_line(srv, deadline, &line_len);
        int64_t t1 = cb_now_us();
        if (!line)
            return -1;
        json_error_t jerr;
        json_auto_t *reply = json_loadb(line, line_len, 0, &jerr);
        if (!reply) {
            fprintf(stderr, "bench_mcp: the server sent a line that is not JSON (%s): %.200s\n",
                    jerr.text, line);
            return -1;
        }
        json_t *rid = json_object_get(reply, "id");
        if (!json_is_integer(rid) || json_integer_value(rid) != id) {
            srv->notifications++;
            continue;
        }
        json_t *error = json_object_get(reply, "error");
        if (error) {
            fprintf(stderr, "bench_mcp: %s: JSON-RPC error %" JSON_INTEGER_FORMAT ": %s\n", method,
                    json_integer_value(json_object_get(error, "code")),
                    json_string_value(json_object_get(error, "message")) ?: "(no message)");
            return -1;
        }
        if (!json_is_object(json_object_get(reply, "result"))) {
            fprintf(stderr, "bench_mcp: %s: the reply has no result object\n", method);
            return -1;
        }
        srv->last_reply_bytes = line_len + 1;
        ans->ms = (double)(t1 - t0) / 1000.0;
        ans->reply = steal_pointer(&reply);
        return 0;
    }
}

/* initialize, then notifications/initialized. Returns the initialize round trip in ms, or -1. */
static double s_initialize(s_server_t *srv, const s_args_t *args)
{
    json_t *params =
        json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", S_PROTOCOL, "capabilities",
                  "clientInfo", "name", "bench_mcp", "version", "0.1.0");
    s_answer_t ans = {0};
    if (s_send(srv, "initialize", params, true, args->timeout_ms, &ans) < 0)
        return -1;
    json_auto_t *reply = ans.reply;
    const char *version =
        json_string_value(json_object_get(json_object_get(reply, "result"), "protocolVersion"));
    if (!version || strcmp(version, S_PROTOCOL) != 0) {
        fprintf(stderr, "bench_mcp: the server answered protocol version %s, not %s\n",
                version ? version : "(none)", S_PROTOCOL);
        return -1;
    }
    if (s_send(srv, "notifications/initialized", NULL, false, 0, NULL) < 0)
        return -1;
    return ans.ms;
}

/* One code_execute of args->code. Returns the round trip in ms and *inside_ms, the reply's
 * duration_ms, or -1 with a message on stderr when the call did not end in a clean run. */
static double s_execute_once(s_server_t *srv, const s_args_t *args, double *inside_ms)
{
    json_t *params =
        json_pack("{s:s, s:{s:s}}", "name", "code_execute", "arguments", "code", args->code);
    s_answer_t ans = {0};
    if (s_send(srv, "tools/call", params, true, args->timeout_ms, &ans) < 0)
        return -1;
    json_auto_t *reply = ans.reply;
    json_t *result = json_object_get(reply, "result");
    json_t *is_error = json_object_get(result, "isError");
    json_t *sc = json_object_get(result, "structuredContent");
    const char *status = json_string_value(json_object_get(sc, "status"));
    json_t *duration = json_object_get(sc, "duration_ms");
    if (!json_is_false(is_error) || !status || strcmp(status, "ok") != 0) {
        cleanup_free char *text = json_dumps(result, JSON_COMPACT);
        fprintf(stderr,
                "bench_mcp: code_execute of '%s' did not run cleanly (isError %s, status "
                "%s): %.600s\n",
                args->code, json_is_false(is_error) ? "false" : "not false",
                status ? status : "(none)", text ? text : "?");
        return -1;
    }
    if (!json_is_number(duration)) {
        fprintf(stderr, "bench_mcp: code_execute's structuredContent has no duration_ms\n");
        return -1;
    }
    *inside_ms = json_number_value(duration);
    return ans.ms;
}

/* One JSON-RPC ping. Returns the round trip in ms, or -1. */
static double s_ping_once(s_server_t *srv, const s_args_t *args)
{
    s_answer_t ans = {0};
    if (s_send(srv, "ping", json_object(), true, args->timeout_ms, &ans) < 0)
        return -1;
    json_decref(ans.reply);
    return ans.ms;
}

/* ---- the benchmark ------------------------------------------------------------------------ */

typedef struct {
    double initialize_ms;
    double first_call_ms;
    double *exec_ms;    /* args->n */
    double *outside_ms; /* args->n: exec_ms minus the gateway's duration_ms */
    double *ping_ms;    /* args->n */
    int n_exec, n_ping;
    size_t request_bytes, reply_bytes; /* of the last code_execute */
    s_cpu_t cpu_per_exec;              /* µs per execution */
    double sched_us_per_ping;
    const char *note;
} s_result_t;

/* CPU per call in µs over a loop of done calls, from c0 to c1. */
static s_cpu_t s_cpu_per_call(s_cpu_t c0, s_cpu_t c1, int done)
{
    if (done == 0)
        return (s_cpu_t){NAN, NAN, NAN};
    return (s_cpu_t){(c1.user - c0.user) * 1e6 / done, (c1.sys - c0.sys) * 1e6 / done,
                     (c1.sched - c0.sched) * 1e6 / done};
}

static int s_run(s_server_t *srv, const s_args_t *args, s_result_t *res)
{
    res->initialize_ms = s_initialize(srv, args);
    if (res->initialize_ms < 0)
        return -1;
    double inside;
    res->first_call_ms = s_execute_once(srv, args, &inside);
    if (res->first_call_ms < 0)
        return -1;
    fprintf(stderr,
            "bench_mcp: initialized in %.1f ms; first code_execute (default sandbox and "
            "kernel start) took %.1f ms\n",
            res->initialize_ms, res->first_call_ms);
    for (int i = 0; i < args->warmup; i++)
        if (s_execute_once(srv, args, &inside) < 0)
            return -1;
    fprintf(stderr, "bench_mcp: %d warm-up executions done; timing %d\n", args->warmup, args->n);

    int64_t t_end = cb_now_us() + (int64_t)(args->max_seconds * 1e6);
    s_cpu_t c0 = s_server_cpu(srv);
    while (res->n_exec < args->n) {
        if (cb_now_us() > t_end) {
            res->note = "time limit reached";
            fprintf(stderr, "bench_mcp: time limit of %g s reached\n", args->max_seconds);
            break;
        }
        double ms = s_execute_once(srv, args, &inside);
        if (ms < 0)
            return -1;
        res->exec_ms[res->n_exec] = ms;
        res->outside_ms[res->n_exec++] = ms - inside;
    }
    s_cpu_t c1 = s_server_cpu(srv);
    res->cpu_per_exec = s_cpu_per_call(c0, c1, res->n_exec);
    res->request_bytes = srv->last_request_bytes;
    res->reply_bytes = srv->last_reply_bytes;

    t_end = cb_now_us() + (int64_t)(args->max_seconds * 1e6);
    c0 = s_server_cpu(srv);
    while (res->n_ping < args->n && cb_now_us() <= t_end) {
        double ms = s_ping_once(srv, args);
        if (ms < 0)
            return -1;
        res->ping_ms[res->n_ping++] = ms;
    }
    c1 = s_server_cpu(srv);
    res->sched_us_per_ping = s_cpu_per_call(c0, c1, res->n_ping).sched;
    if (srv->notifications)
        fprintf(stderr, "bench_mcp: %zu notification(s) from the server skipped\n",
                srv->notifications);
    return 0;
}

static int s_print_result(const s_args_t *args, s_result_t *res)
{
    s_cpu_t cpu = res->cpu_per_exec;
    json_auto_t *out = json_pack(
        "{s:s, s:s, s:b, s:s, s:s, s:i, s:f, s:f, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o, "
        "s:o}",
        "name", args->sandbox ? "cellblock-mcp-sandboxed" : "cellblock-mcp", "transport", "stdio",
        "sandbox", args->sandbox, "server", args->cellblock, "code", args->code, "warmup",
        args->warmup, "initialize_ms", bench_round4(res->initialize_ms), "first_call_ms",
        bench_round4(res->first_call_ms), "exec_ms",
        bench_summary(res->exec_ms, (size_t)res->n_exec), "outside_execution_ms",
        bench_summary(res->outside_ms, (size_t)res->n_exec), "ping_ms",
        bench_summary(res->ping_ms, (size_t)res->n_ping), "request_bytes",
        (json_int_t)res->request_bytes, "reply_bytes", (json_int_t)res->reply_bytes,
        "mcp_server_cpu_us_per_exec", s_json_us(cpu.user + cpu.sys),
        "mcp_server_user_cpu_us_per_exec", s_json_us(cpu.user), "mcp_server_sys_cpu_us_per_exec",
        s_json_us(cpu.sys), "mcp_server_sched_cpu_us_per_exec", s_json_us(cpu.sched),
        "mcp_server_sched_cpu_us_per_ping", s_json_us(res->sched_us_per_ping));
    if (!out) {
        fprintf(stderr, "bench_mcp: building the JSON result failed\n");
        return -1;
    }
    if (res->note && json_object_set_new(out, "note", json_string(res->note)) < 0)
        return -1;
    int rc = json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (rc < 0 || fputc('\n', stdout) == EOF || fflush(stdout) == EOF) {
        fprintf(stderr, "bench_mcp: writing the result failed\n");
        return -1;
    }
    return 0;
}

/* ---- options --------------------------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fprintf(f, "usage: bench_mcp [--n N] [--warmup W] [--code CODE] [--max-seconds S]\n"
               "                 [--timeout S] [--cellblock PATH] [--sandbox] [--kernels K]\n"
               "Spawns `cellblock mcp --no-sandbox` (--sandbox: without --no-sandbox) and prints\n"
               "one JSON object with its code_execute round-trip figures. --cellblock defaults to\n"
               "$CB_BUILD_DIR/bin/cellblock (CB_BUILD_DIR: build). --kernels is ignored.\n");
}

static int s_parse_args(int argc, char **argv, s_args_t *args)
{
    static const struct option longopts[] = {
        {"n", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"code", required_argument, NULL, 'c'},
        {"max-seconds", required_argument, NULL, 'm'},
        {"timeout", required_argument, NULL, 't'},
        {"cellblock", required_argument, NULL, 'b'},
        {"sandbox", no_argument, NULL, 's'},
        {"kernels", required_argument, NULL, 'k'}, /* bench_gateway's; ignored here */
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "n:w:c:m:t:b:sk:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': args->n = atoi(optarg); break;
        case 'w': args->warmup = atoi(optarg); break;
        case 'c': args->code = optarg; break;
        case 'm': args->max_seconds = atof(optarg); break;
        case 't': args->timeout_ms = (int)(atof(optarg) * 1000); break;
        case 'b': args->cellblock = optarg; break;
        case 's': args->sandbox = true; break;
        case 'k': break;
        case 'h': s_usage(stdout); exit(0);
        default: s_usage(stderr); return -1;
        }
    }
    if (optind != argc || args->n < 1 || args->warmup < 0 || args->max_seconds <= 0 ||
        args->timeout_ms <= 0) {
        fprintf(stderr, "bench_mcp: --n must be at least 1, --warmup at least 0, --max-seconds "
                        "and --timeout positive\n");
        s_usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *build_dir = getenv("CB_BUILD_DIR");
    cleanup_free char *default_bin =
        cb_strdup_printf("%s/bin/cellblock", build_dir && *build_dir ? build_dir : "build");
    s_args_t args = {.n = 500,
                     .warmup = 20,
                     .code = "pass",
                     .cellblock = default_bin,
                     .max_seconds = 120,
                     .timeout_ms = 60000};
    if (!default_bin || s_parse_args(argc, argv, &args) < 0)
        return 2;
    if (access(args.cellblock, X_OK) < 0) {
        fprintf(stderr, "bench_mcp: %s: %s (build the cellblock target, or pass --cellblock)\n",
                args.cellblock, strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN); /* a server that died shows as EPIPE on write */

    cleanup_free double *exec_ms = calloc((size_t)args.n, sizeof *exec_ms);
    cleanup_free double *outside_ms = calloc((size_t)args.n, sizeof *outside_ms);
    cleanup_free double *ping_ms = calloc((size_t)args.n, sizeof *ping_ms);
    if (!exec_ms || !outside_ms || !ping_ms) {
        fprintf(stderr, "bench_mcp: out of memory\n");
        return 1;
    }
    s_server_t srv = {.pid = -1, .to_fd = -1, .from_fd = -1};
    if (s_server_start(&srv, &args) < 0) {
        fprintf(stderr, "bench_mcp: spawning %s mcp: %s\n", args.cellblock, strerror(errno));
        return 1;
    }
    fprintf(stderr, "bench_mcp: %s mcp%s started (pid %d)\n", args.cellblock,
            args.sandbox ? "" : " --no-sandbox", (int)srv.pid);
    s_result_t res = {.exec_ms = exec_ms, .outside_ms = outside_ms, .ping_ms = ping_ms};
    int rc = s_run(&srv, &args, &res);
    int status = s_server_stop(&srv);
    if (status != -1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "bench_mcp: the server ended badly (%s %d)\n",
                WIFSIGNALED(status) ? "signal" : "exit status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        if (rc == 0)
            res.note = "the server did not exit cleanly at the end (see stderr)";
    }
    if (rc < 0 || s_print_result(&args, &res) < 0)
        return 1;
    return 0;
}
