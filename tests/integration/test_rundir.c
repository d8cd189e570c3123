/* test_rundir.c: the run directory is hostile territory. Code in a real sandbox attacks what the
 * gateway does in /run/cellblock (and with a persistent workspace), and the real gateway must
 * neither follow a link out of it, nor block on what it finds there, nor connect to a socket the
 * sandbox chose, nor hold more memory than a message may take.
 *
 *   test_rundir links    the kernel's directory swapped for a symlink to a host canary
 *                        directory, and symlinks to a host canary file under every name the
 *                        gateway writes (connection.json, attach.json and its old temporary
 *                        name, k-<id>.attach.json): attach, restart, shutdown and the sandbox's
 *                        end leave the canaries whole; the same names as FIFOs do not block it
 *   test_rundir swap     kernel shutdowns while two processes inside keep swapping
 *                        subdirectories of the kernel's directory for symlinks to a host canary
 *                        directory (8 tries: it is a race, and session_close gives an attacker
 *                        as many as it likes), and the discard of a persistent workspace full of
 *                        such links, a FIFO and deep directories
 *   test_rundir socket   symlinks to a host unix socket the test listens on planted in place of
 *                        the kernel's sockets, then a restart: the host socket never sees a
 *                        connection and the kernel works again
 *   test_rundir size     one 512 MiB frame from inside on a socket the gateway reads: the
 *                        gateway's memory stays far below that, and it keeps serving
 *
 * The test is the gateway (the C API, as tests/integration/test_sandboxed.c), so a gateway that
 * blocks blocks the test: an alarm ends it then, which fails it. Every other wait is on the event
 * itself with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "cb/tap.h"
#include "cb/util.h"
#include "fleet/fleet.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"
#include "kg/command.h"
#include "kg_run.h"

#define DEADLINE_MS 60000
#define WATCHDOG_S 240 /* a gateway blocked in open(2) never comes back: fail, not hang */
#define CANARY_TEXT "canary\n"
#define CANARY_FILES 400 /* f0 ... in the canary directory: the names a swapped tree holds */

static char s_tmp[64]; /* this run's directory: canaries, the runtime dir, the state dir */

/* ---- kernels ----------------------------------------------------------------------------- */

typedef struct {
    volatile int flag;
    kg_kernel_event_t awaited;
    int ready;
} events_t;

static void s_on_event(kg_kernel_t *k, kg_kernel_event_t event, const char *detail, void *arg)
{
    events_t *ev = arg;
    ev->ready += event == KG_EVENT_READY;
    if (event == ev->awaited)
        ev->flag = 1;
}

static void s_expect(events_t *ev, kg_kernel_event_t event)
{
    ev->flag = 0;
    ev->awaited = event;
}

static bool s_await(kg_gateway_t *gw, events_t *ev)
{
    return kg_gateway_run_until(gw, &ev->flag, DEADLINE_MS) == 0;
}

static kg_kernel_t *s_start(kg_gateway_t *gw, events_t *ev, kg_sandbox_t *sb)
{
    cb_error_t err = {0};
    s_expect(ev, KG_EVENT_READY);
    kg_kernel_t *k = kg_kernel_start(
        gw, &(kg_kernel_opts_t){.sandbox = sb, .on_event = s_on_event, .arg = ev}, &err);
    if (!k)
        CB_DIAG("kg_kernel_start: %s", err.msg);
    if (k && !s_await(gw, ev)) {
        CB_DIAG("kernel %.8s did not become ready", kg_kernel_id(k));
        return NULL;
    }
    return k;
}

static bool s_shutdown(kg_gateway_t *gw, kg_kernel_t *k, events_t *ev)
{
    s_expect(ev, KG_EVENT_STOPPED);
    kg_kernel_shutdown(k);
    return s_await(gw, ev);
}

static bool s_restart(kg_gateway_t *gw, kg_kernel_t *k, events_t *ev)
{
    cb_error_t err = {0};
    s_expect(ev, KG_EVENT_READY);
    if (kg_kernel_restart(k, &err) < 0) {
        CB_DIAG("kg_kernel_restart: %s", err.msg);
        return false;
    }
    return s_await(gw, ev);
}

/* Run code to completion; its stdout, or "" (with a diagnostic) when it failed. Caller owns
 * return value. */
static char *s_run(kg_gateway_t *gw, kg_kernel_t *k, const char *code)
{
    json_auto_t *result = tst_kg_run(gw, k, code, 30000, DEADLINE_MS);
    const char *status = json_string_value(json_object_get(result, "status"));
    const char *out = json_string_value(json_object_get(result, "stdout"));
    if (result && (!status || strcmp(status, "ok") != 0)) {
        json_t *e = json_object_get(result, "error");
        CB_DIAG("status %s: %s %s", status ? status : "none",
                json_string_value(json_object_get(e, "ename")),
                json_string_value(json_object_get(e, "evalue")));
    }
    return strdup(status && strcmp(status, "ok") == 0 && out ? out : "");
}

/* ---- commands ---------------------------------------------------------------------------- */

typedef struct {
    volatile int done;
    volatile int output; /* something came on stdout */
} cmd_t;

static void s_cmd_done(kg_command_t *c, json_t *result, void *arg) { ((cmd_t *)arg)->done = 1; }

static void s_cmd_output(kg_command_t *c, const char *stream, const char *data, size_t len,
                         void *arg)
{
    if (strcmp(stream, "stdout") == 0)
        ((cmd_t *)arg)->output = 1;
}

static kg_command_t *s_cmd_start(kg_sandbox_t *sb, const char *command, cmd_t *c)
{
    cb_error_t err = {0};
    kg_command_t *cmd = kg_command_start(
        sb,
        &(kg_command_opts_t){
            .command = command, .on_output = s_cmd_output, .on_done = s_cmd_done, .arg = c},
        &err);
    if (!cmd)
        CB_DIAG("kg_command_start: %s", err.msg);
    return cmd;
}

/* ---- canaries: host files and a host directory that root may write ----------------------- */

static char *s_path(const char *name) { return cb_strdup_printf("%s/%s", s_tmp, name); }

static void s_make_canaries(void)
{
    cb_error_t err = {0};
    cleanup_free char *dir = s_path("canary-dir");
    cleanup_free char *file = s_path("canary-file");
    cb_mkdir_p(dir, 0755, &err);
    cb_write_file(file, CANARY_TEXT, strlen(CANARY_TEXT), 0644, &err);
    /* the names the gateway uses and the ones a swapped tree holds: a write or removal by path
     * through a planted link hits them */
    const char *names[] = {"attach.json", "connection.json", "k-1", "k-2"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        cleanup_free char *p = cb_strdup_printf("%s/%s", dir, names[i]);
        cb_write_file(p, CANARY_TEXT, strlen(CANARY_TEXT), 0644, &err);
    }
    for (int i = 0; i < CANARY_FILES; i++) {
        cleanup_free char *p = cb_strdup_printf("%s/f%d", dir, i);
        cb_write_file(p, CANARY_TEXT, strlen(CANARY_TEXT), 0644, &err);
    }
}

/* Every canary still there with its text; else how many are not, and the first, into what. */
static bool s_canaries_whole(char *what, size_t size)
{
    static const char *const fixed[] = {"canary-file", "canary-dir/attach.json",
                                        "canary-dir/connection.json", "canary-dir/k-1"};
    int bad = 0, total = 4 + CANARY_FILES;
    char first[64] = "";
    for (int i = 0; i < total; i++) {
        cleanup_free char *p =
            i < 4 ? s_path(fixed[i]) : cb_strdup_printf("%s/canary-dir/f%d", s_tmp, i - 4);
        cleanup_free char *text = cb_read_file(p, 4096, NULL, NULL);
        if (!text || strcmp(text, CANARY_TEXT) != 0) {
            if (!bad++)
                snprintf(first, sizeof first, "%s", strrchr(p, '/') + 1);
        }
    }
    if (bad)
        snprintf(what, size, "%d of %d changed or gone, %s first", bad, total, first);
    else
        snprintf(what, size, "all %d whole", total);
    return bad == 0;
}

/* ---- links: symlinks and FIFOs under every name the gateway writes ------------------------ */

/* Python run in the kernel: d is its own directory, a the gateway's old and new attach names. */
static char *s_plant_code(kg_kernel_t *k, const char *body)
{
    return cb_strdup_printf(
        "import os\n"
        "d = '/run/cellblock/k-%.8s'\n"
        "names = [d + '/connection.json', d + '/attach.json', d + '/attach.json.tmp%d',\n"
        "         '/run/cellblock/k-%.8s.attach.json', '/run/cellblock/attach.json']\n"
        "def clear(p):\n"
        "    if os.path.lexists(p): os.unlink(p)\n"
        "%s",
        kg_kernel_id(k), (int)getpid(), kg_kernel_id(k), body);
}

static void s_links(kg_gateway_t *gw)
{
    s_make_canaries();
    char what[256];
    cb_error_t err = {0};
    kg_sandbox_t *sb = kg_sandbox_create(gw, NULL, &err);
    if (!CB_OK(sb, "a sandbox (%s)", sb ? "ok" : err.msg))
        return;
    cleanup_free char *canary_dir = s_path("canary-dir");
    cleanup_free char *canary_file = s_path("canary-file");

    /* 1. The kernel's directory becomes a symlink to the host canary directory. */
    events_t ev1 = {0};
    kg_kernel_t *k1 = s_start(gw, &ev1, sb);
    CB_OK(k1, "a kernel starts in the sandbox");
    cleanup_free char *swap = cb_strdup_printf(
        "os.rename(d, d + '.aside')\nos.symlink('%s', d)\nprint('planted')", canary_dir);
    cleanup_free char *code1 = k1 ? s_plant_code(k1, swap) : NULL;
    cleanup_free char *out1 = s_run(gw, k1, code1 ? code1 : "");
    CB_OK(strcmp(out1, "planted\n") == 0, "code inside replaced its kernel dir by a symlink to %s",
          canary_dir);
    const char *attach = k1 ? kg_kernel_attach(k1, &err) : NULL;
    CB_OK(attach, "session_connect's attach works (%s)", attach ? attach : err.msg);
    CB_OK(s_canaries_whole(what, sizeof what), "attach wrote nothing through the link (%s)", what);
    CB_OK(k1 && s_shutdown(gw, k1, &ev1), "the kernel shuts down");
    CB_OK(s_canaries_whole(what, sizeof what), "shutdown removed nothing through the link (%s)",
          what);

    /* 2. Symlinks to the canary file under every name the gateway writes, then attach, restart
     * (a new connection file), code, shutdown. */
    events_t ev2 = {0};
    kg_kernel_t *k2 = s_start(gw, &ev2, sb);
    cleanup_free char *links =
        cb_strdup_printf("for p in names:\n    clear(p)\n    os.symlink('%s', p)\n"
                         "print('planted')",
                         canary_file);
    cleanup_free char *code2 = k2 ? s_plant_code(k2, links) : NULL;
    cleanup_free char *out2 = s_run(gw, k2, code2 ? code2 : "");
    CB_OK(strcmp(out2, "planted\n") == 0,
          "code inside planted symlinks to %s under the gateway's names", canary_file);
    attach = k2 ? kg_kernel_attach(k2, &err) : NULL;
    CB_OK(attach, "attach works beside them (%s)", attach ? attach : err.msg);
    CB_OK(k2 && s_restart(gw, k2, &ev2),
          "a restart brings the kernel back (its connection file anew)");
    cleanup_free char *back2 = s_run(gw, k2, "print(6 * 7)");
    CB_OK(strcmp(back2, "42\n") == 0, "the restarted kernel runs code");
    CB_OK(s_canaries_whole(what, sizeof what), "attach and restart wrote nothing through them (%s)",
          what);
    CB_OK(k2 && s_shutdown(gw, k2, &ev2), "the kernel shuts down");
    CB_OK(s_canaries_whole(what, sizeof what), "shutdown removed nothing through them (%s)", what);

    /* 3. FIFOs under the same names: nothing blocks (the watchdog would end the test). */
    events_t ev3 = {0};
    kg_kernel_t *k3 = s_start(gw, &ev3, sb);
    cleanup_free char *code3 =
        k3 ? s_plant_code(k3, "for p in names:\n    clear(p)\n    os.mkfifo(p)\nprint('planted')")
           : NULL;
    cleanup_free char *out3 = s_run(gw, k3, code3 ? code3 : "");
    CB_OK(strcmp(out3, "planted\n") == 0, "code inside planted FIFOs under the gateway's names");
    attach = k3 ? kg_kernel_attach(k3, &err) : NULL;
    CB_OK(attach, "attach does not block on them (%s)", attach ? attach : err.msg);
    CB_OK(k3 && s_restart(gw, k3, &ev3), "nor does a restart");
    cleanup_free char *back3 = s_run(gw, k3, "print('alive')");
    CB_OK(strcmp(back3, "alive\n") == 0, "the kernel answers");
    CB_OK(k3 && s_shutdown(gw, k3, &ev3), "nor does a shutdown");

    /* The sandbox's end (sandbox_delete) with the links still in /run/cellblock. */
    events_t ev4 = {0};
    kg_kernel_t *k4 = s_start(gw, &ev4, sb);
    cleanup_free char *code4 = k4 ? s_plant_code(k4, links) : NULL;
    cleanup_free char *out4 = s_run(gw, k4, code4 ? code4 : "");
    attach = k4 ? kg_kernel_attach(k4, &err) : NULL;
    kg_sandbox_destroy(&sb);
    CB_OK(strcmp(out4, "planted\n") == 0 && attach,
          "links planted and attached before the sandbox ends");
    CB_OK(s_canaries_whole(what, sizeof what),
          "the sandbox's end removed nothing through them (%s)", what);
}

/* ---- swap: removal while code inside swaps directories for symlinks ---------------------- */

/* The swapper, compiled inside the sandbox (a Python loop is too slow to win the race often):
 * two trees t/sub0 and t/sub1 under the kernel's directory holding the canary directory's names
 * and as many other files as the filesystem takes (a long removal is a wide window), then, until
 * /home/user/stop appears, two processes each turn one of them into a symlink to the canary
 * directory for a moment, and back for ten: a remover that walks in by name then often finds
 * itself removing by a path that leads through the symlink. */
static const char s_swapper_c[] =
    "#include <stdio.h>\n#include <unistd.h>\n#include <sys/stat.h>\n#include <sys/wait.h>\n"
    "static void swap(const char *canary, const char *sub, const char *aside) {\n"
    "    while (access(\"/home/user/stop\", F_OK) != 0) {\n"
    "        int moved = rename(sub, aside) == 0;\n"
    "        if (symlink(canary, sub) == 0) {\n"
    "            for (volatile int s = 0; s < 2000; s++) {}\n"
    "            unlink(sub);\n"
    "        }\n"
    "        if (moved) rename(aside, sub);\n"
    "        for (volatile int s = 0; s < 20000; s++) {}\n"
    "    }\n"
    "}\n"
    "int main(int argc, char **argv) {\n"
    "    char p[64];\n"
    "    if (argc < 3 || chdir(argv[2]) != 0 || mkdir(\"t\", 0700) != 0) return 1;\n"
    "    for (int d = 0; d < 2; d++) {\n"
    "        snprintf(p, sizeof p, \"t/sub%d\", d);\n"
    "        mkdir(p, 0700);\n"
    "        const char *fixed[] = {\"attach.json\", \"connection.json\", \"k-1\"};\n"
    "        for (int i = 0; i < 20403; i++) {\n"
    "            if (i < 3) snprintf(p, sizeof p, \"t/sub%d/%s\", d, fixed[i]);\n"
    "            else if (i < 403) snprintf(p, sizeof p, \"t/sub%d/f%d\", d, i - 3);\n"
    "            else snprintf(p, sizeof p, \"t/sub%d/g%d\", d, i);\n"
    "            FILE *f = fopen(p, \"w\");\n"
    "            if (f) fclose(f);\n"
    "        }\n"
    "    }\n"
    "    printf(\"started\\n\");\n"
    "    fflush(stdout);\n"
    "    if (fork() == 0) { swap(argv[1], \"t/sub1\", \"t/aside1\"); return 0; }\n"
    "    swap(argv[1], \"t/sub0\", \"t/aside0\");\n"
    "    wait(NULL);\n"
    "    return 0;\n"
    "}\n";

static void s_swap(kg_gateway_t *gw)
{
    s_make_canaries();
    char what[256];
    cb_error_t err = {0};
    cleanup_free char *canary_dir = s_path("canary-dir");
    kg_sandbox_t *sb = kg_sandbox_create(gw, NULL, &err);
    if (!CB_OK(sb, "a sandbox (%s)", sb ? "ok" : err.msg))
        return;
    cmd_t cc = {0};
    int rc = kg_sandbox_file_write(sb, "/home/user/swap.c", s_swapper_c, strlen(s_swapper_c), false,
                                   &err);
    if (rc == 0 &&
        s_cmd_start(sb, "gcc -O1 -o /home/user/swap /home/user/swap.c && echo built", &cc))
        kg_gateway_run_until(gw, &cc.done, DEADLINE_MS);
    if (!CB_OK(cc.output, "the swapper is compiled inside the sandbox"))
        return;
    int whole = 0, tries = 8;
    for (int i = 0; i < tries; i++) {
        events_t ev = {0};
        kg_kernel_t *k = s_start(gw, &ev, sb);
        if (!k)
            break;
        cleanup_free char *cmd = cb_strdup_printf("exec /home/user/swap %s /run/cellblock/k-%.8s",
                                                  canary_dir, kg_kernel_id(k));
        cmd_t c = {0};
        kg_command_t *swapper = s_cmd_start(sb, cmd, &c);
        if (swapper) /* it swaps from here on */
            kg_gateway_run_until(gw, &c.output, DEADLINE_MS);
        s_shutdown(gw, k, &ev);
        kg_sandbox_file_write(sb, "/home/user/stop", "", 0, false, &err);
        if (swapper)
            kg_gateway_run_until(gw, &c.done, DEADLINE_MS);
        kg_sandbox_file_remove(sb, "/home/user/stop", false, &err);
        bool ok = s_canaries_whole(what, sizeof what);
        whole += ok;
        if (!ok)
            CB_DIAG("try %d: %s", i, what);
        s_make_canaries();
    }
    CB_OK(whole == tries,
          "%d kernel shutdowns under a swapping process left the canaries whole (%d did)", tries,
          whole);
    kg_sandbox_destroy(&sb);

    /* A persistent workspace full of links to the canaries, FIFOs and deep directories is
     * discarded: only the workspace goes. */
    kg_sandbox_t *p = fleet_sandbox_open(
        fleet_of(gw), &(fleet_sandbox_opts_t){.persist = true, .no_pool = true}, &err);
    if (!CB_OK(p, "a persistent sandbox (%s)", p ? "ok" : err.msg))
        return;
    char id[64];
    snprintf(id, sizeof id, "%s", kg_sandbox_id(p));
    cleanup_free char *fill =
        cb_strdup_printf("mkdir -p a/b && ln -s %s a/b/dir && ln -s %s/f0 a/f0 && ln -s "
                         "../../../../.. a/up && mkfifo a/fifo && "
                         "d=deep; for i in $(seq 1 100); do mkdir -p $d; d=$d/d; done; echo made",
                         canary_dir, canary_dir);
    cmd_t c = {0};
    if (s_cmd_start(p, fill, &c))
        kg_gateway_run_until(gw, &c.done, DEADLINE_MS);
    kg_sandbox_destroy(&p);
    rc = fleet_discard_workspace(fleet_of(gw), id, &err);
    CB_OK(rc == 0, "the persistent workspace is discarded (%s)", rc ? err.msg : "ok");
    cleanup_free char *home = cb_strdup_printf("%s/state/sandboxes/%s", s_tmp, id);
    struct stat st;
    CB_OK(lstat(home, &st) < 0 && errno == ENOENT, "its directory is gone");
    CB_OK(s_canaries_whole(what, sizeof what), "nothing its links pointed at was touched (%s)",
          what);
}

/* ---- socket: a symlink in place of a kernel socket --------------------------------------- */

static void s_socket(kg_gateway_t *gw)
{
    cleanup_free char *sock_path = s_path("host.sock");
    cleanup_close int lis = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock_path);
    if (!CB_OK(lis >= 0 && bind(lis, (struct sockaddr *)&addr, sizeof addr) == 0 &&
                   listen(lis, 64) == 0,
               "a unix socket listens on the host at %s", sock_path))
        return;
    cb_error_t err = {0};
    kg_sandbox_t *sb = kg_sandbox_create(gw, NULL, &err);
    events_t ev = {0};
    kg_kernel_t *k = sb ? s_start(gw, &ev, sb) : NULL;
    if (!CB_OK(k, "a sandboxed kernel (%s)", sb ? "ok" : err.msg))
        return;
    /* Replace each socket file by a symlink to the host socket (atomically, so the names are
     * never missing); the kernel's bound sockets and the gateway's connections live on. */
    cleanup_free char *code =
        cb_strdup_printf("import os\nd = '/run/cellblock/k-%.8s'\n"
                         "for i in range(1, 6):\n"
                         "    os.symlink('%s', d + '/new')\n"
                         "    os.rename(d + '/new', d + '/k-%%d' %% i)\n"
                         "print(sorted(os.path.islink(d + '/k-%%d' %% i) for i in range(1, 6)))",
                         kg_kernel_id(k), sock_path);
    cleanup_free char *planted = s_run(gw, k, code);
    CB_OK(strcmp(planted, "[True, True, True, True, True]\n") == 0,
          "the five socket files are symlinks now");
    CB_OK(s_restart(gw, k, &ev), "the kernel restarts and becomes ready");
    cleanup_free char *out = s_run(gw, k, "print(6 * 7)");
    CB_OK(strcmp(out, "42\n") == 0, "and runs code");
    int conn = accept4(lis, NULL, NULL, SOCK_CLOEXEC);
    CB_OK(conn < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
          "the host socket never saw a connection from the gateway");
    if (conn >= 0)
        close(conn);
    kg_sandbox_destroy(&sb);
}

/* ---- size: one oversized frame ------------------------------------------------------------ */

/* The high-water mark of our resident memory (we are the gateway), in KiB. */
static long s_vm_hwm_kib(void)
{
    cleanup_fclose FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    return kib;
}

static void s_size(kg_gateway_t *gw)
{
    cb_error_t err = {0};
    kg_sandbox_t *sb = kg_sandbox_create(gw, NULL, &err);
    events_t ev = {0};
    kg_kernel_t *k = sb ? s_start(gw, &ev, sb) : NULL;
    if (!CB_OK(k, "a sandboxed kernel (%s)", sb ? "ok" : err.msg))
        return;
    cleanup_free char *warm = s_run(gw, k, "print('warm')");
    long before = s_vm_hwm_kib();
    /* 512 MiB of zero pages (calloc: no memory of the sandbox's is used to hold them), sent
     * without a copy on the kernel's stdin socket to the gateway's stdin DEALER (the identity of
     * the request's sender), and waited for until ZMQ is done with them: delivered, or dropped
     * with the connection. */
    const char *code = "import zmq\n"
                       "k = get_ipython().kernel\n"
                       "big = bytes(512 << 20)\n"
                       "t = k.stdin_socket.send_multipart(k._parent_ident['shell'] + [big], "
                       "copy=False, track=True)\n"
                       "t.wait(60)\n"
                       "print('sent', t.done)";
    cleanup_free char *sent = s_run(gw, k, code);
    CB_OK(strcmp(sent, "sent True\n") == 0,
          "code inside sent one 512 MiB frame to the gateway (%.*s)", (int)strcspn(sent, "\n"),
          sent);
    cleanup_free char *after_run = s_run(gw, k, "print('still here')");
    long after = s_vm_hwm_kib();
    CB_OK(before > 0 && after - before < 96 * 1024,
          "the gateway's memory high-water mark grew by %ld MiB (from %ld MiB), far below 512 MiB",
          (after - before) / 1024, before / 1024);
    CB_OK(strcmp(after_run, "still here\n") == 0, "the kernel still answers through the gateway");
    cmd_t c = {0};
    kg_sandbox_t *other = kg_sandbox_create(gw, NULL, &err);
    if (other && s_cmd_start(other, "echo ok", &c))
        kg_gateway_run_until(gw, &c.done, DEADLINE_MS);
    CB_OK(c.done, "another sandbox's command runs");
    kg_sandbox_destroy(&other);
    kg_sandbox_destroy(&sb);
}

/* ---- main -------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(kg_gateway_t *gw);
} s_groups[] = {{"links", s_links}, {"swap", s_swap}, {"socket", s_socket}, {"size", s_size}};

int main(int argc, char **argv)
{
    const char *group = argc > 1 ? argv[1] : "links";
    size_t g = 0, n = sizeof s_groups / sizeof *s_groups;
    while (g < n && strcmp(s_groups[g].name, group) != 0)
        g++;
    if (g == n) {
        CB_OK(0, "unknown group '%s'", group);
        return cb_tap_done();
    }
    tst_kg_require_sandboxed_python();
    snprintf(s_tmp, sizeof s_tmp, "/tmp/cb-test-rundir-XXXXXX");
    if (!mkdtemp(s_tmp))
        CB_SKIP_ALL("cannot make a temp dir");
    chmod(s_tmp, 0755);
    alarm(WATCHDOG_S);

    cleanup_free char *runtime = s_path("rt");
    cleanup_free char *state = s_path("state");
    cb_error_t err = {0};
    cb_mkdir_p(runtime, 0700, &err);
    kg_gateway_t *gw = kg_gateway_new(&(kg_config_t){.runtime_dir = runtime}, &err);
    if (gw && !fleet_new(gw, &(fleet_config_t){.state_dir = state}, &err))
        kg_gateway_destroy(&gw);
    if (!gw)
        CB_DIAG("kg_gateway_new: %s", err.msg);
    if (CB_OK(gw, "gateway starts"))
        s_groups[g].run(gw);
    kg_gateway_destroy(&gw);
    cb_rm_rf(s_tmp, NULL);
    return cb_tap_done();
}
