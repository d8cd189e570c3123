/* tools.c: the tool table and the argument checks every call goes through.
 *
 * One row per tool: name, title, description (written for a model: what it does and when to
 * use it), inputSchema and outputSchema as JSON text, hints, handler. tools/list is built from
 * the table once; tools/call checks the arguments against the inputSchema here, so handlers
 * only hold their own logic and read arguments that are known to have the right types.
 */
#include <math.h>
#include <string.h>

#include "jupyter/catalog.h"
#include "mcp_private.h"

/* ---- schemas ------------------------------------------------------------------------------- */

/* The schemas and the table are JSON text laid out by hand to be read: clang-format would cut
 * their strings at arbitrary points. */
// clang-format off

#define S_OBJ(props, req) "{\"type\":\"object\",\"properties\":{" props "},\"required\":[" req "],\"additionalProperties\":false}"
#define S_STR(desc) "{\"type\":\"string\",\"description\":\"" desc "\"}"
#define S_NUM(desc, min, max) "{\"type\":\"number\",\"minimum\":" #min ",\"maximum\":" #max ",\"description\":\"" desc "\"}"
#define S_INT(desc, min, max) "{\"type\":\"integer\",\"minimum\":" #min ",\"maximum\":" #max ",\"description\":\"" desc "\"}"
#define S_BOOL(desc) "{\"type\":\"boolean\",\"description\":\"" desc "\"}"
#define S_STRMAP(desc) "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},\"description\":\"" desc "\"}"

#define P_SANDBOX "\"sandbox_id\":" S_STR("The sandbox; leave out to use this session's default sandbox.")
#define P_TIMEOUT "\"timeout_s\":" S_NUM("Time limit in seconds; default: the sandbox's timeout_s.", 0.001, 86400)
#define P_PATH(desc) "\"path\":" S_STR(desc)

#define IN_CODE_PROPS                                                                              \
    "\"code\":" S_STR("The code to run, like one notebook cell.") "," P_SANDBOX ","                \
    "\"language\":" S_STR("The language, case-insensitive: " JP_LANGUAGE_NAMES                    \
                           ". Each language has its own kernel in the sandbox, started on "        \
                           "first use and kept (variables persist between calls). "                \
                           "Default: the sandbox's main kernel (python unless its "                \
                           "template says otherwise).") ","                                        \
    "\"kernel\":" S_STR("A kernelspec name, instead of language.") "," P_TIMEOUT ","               \
    "\"stdin\":" S_STR("Lines answered to input() in turn.")
#define IN_CODE S_OBJ(IN_CODE_PROPS, "\"code\"")
/* packages: code_execute and run_code install them first (mcp/packages.c checks each name). */
#define P_PACKAGES                                                                                 \
    "\"packages\":{\"type\":\"array\",\"maxItems\":64,\"items\":{\"type\":\"string\"},"               \
    "\"description\":\"Packages to install before the code runs, such as [\\\"requests\\\", "          \
    "\\\"lodash@4\\\"]: with pip for Python, npm for JavaScript and TypeScript, into the "             \
    "workspace (a persistent sandbox keeps them). The sandbox's network policy must allow the "    \
    "registry (preset packages). If the install fails, the code is not run and the error holds "  \
    "the installer's output.\"}"
#define IN_CODE_PACKAGES S_OBJ(IN_CODE_PROPS "," P_PACKAGES, "\"code\"")

/* When the sandbox a result names ends (added to every result that names one). */
#define OUT_EXPIRES "\"expires_at\":{\"type\":[\"string\",\"null\"]}"

/* The result of an execution: the Jupyter model, close to E2B's Execution. */
#define OUT_EXECUTION_PROPS                                                                        \
    "\"sandbox_id\":{\"type\":\"string\"},\"session_id\":{\"type\":\"string\"},"                   \
    "\"execution_id\":{\"type\":\"string\"},"                                                      \
    "\"status\":{\"type\":\"string\",\"enum\":[\"ok\",\"error\",\"timeout\",\"cancelled\","        \
    "\"kernel_died\",\"aborted\",\"queued\",\"running\"]},"                                        \
    "\"execution_count\":{\"type\":[\"integer\",\"null\"]},"                                       \
    "\"stdout\":{\"type\":\"string\"},\"stderr\":{\"type\":\"string\"},"                           \
    "\"results\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"              \
    "\"data\":{\"type\":\"object\"},\"metadata\":{\"type\":\"object\"},"                           \
    "\"is_main_result\":{\"type\":\"boolean\"},\"display_id\":{\"type\":\"string\"}},"             \
    "\"required\":[\"data\"]}},"                                                                   \
    "\"error\":{\"type\":[\"object\",\"null\"],\"properties\":{\"ename\":{\"type\":\"string\"},"   \
    "\"evalue\":{\"type\":\"string\"},\"traceback\":{\"type\":\"array\",\"items\":{\"type\":"      \
    "\"string\"}}}},"                                                                              \
    "\"duration_ms\":{\"type\":\"number\"},\"kernel_restarted\":{\"type\":\"boolean\"},"           \
    "\"notes\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"                              \
    "\"truncated\":{\"type\":\"boolean\"}," OUT_EXPIRES
#define OUT_EXECUTION                                                                              \
    "{\"type\":\"object\",\"properties\":{" OUT_EXECUTION_PROPS "},\"required\":[\"execution_id\","\
    "\"status\",\"stdout\",\"stderr\",\"results\",\"error\"]}"

#define OUT_COMMAND_PROPS                                                                          \
    "\"command_id\":{\"type\":\"string\"},\"sandbox_id\":{\"type\":\"string\"},"                   \
    "\"command\":{\"type\":\"string\"},"                                                           \
    "\"status\":{\"type\":\"string\",\"enum\":[\"running\",\"exited\",\"killed\",\"timeout\","     \
    "\"failed\"]},"                                                                                \
    "\"exit_code\":{\"type\":[\"integer\",\"null\"]},\"signal\":{\"type\":[\"string\",\"null\"]}," \
    "\"oom\":{\"type\":\"boolean\"},\"stdout\":{\"type\":\"string\"},\"stderr\":{\"type\":"        \
    "\"string\"},\"pid\":{\"type\":[\"integer\",\"null\"]},\"duration_ms\":{\"type\":\"number\"}," \
    "\"inside_pid\":{\"type\":[\"integer\",\"null\"]},"                                      \
    "\"notes\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"truncated\":{\"type\":"      \
    "\"boolean\"}," OUT_EXPIRES
#define OUT_COMMAND                                                                                \
    "{\"type\":\"object\",\"properties\":{" OUT_COMMAND_PROPS "},\"required\":[\"command_id\","    \
    "\"status\"]}"

#define OUT_SANDBOX_SUMMARY_PROPS                                                                  \
    "\"sandbox_id\":{\"type\":\"string\"},\"template\":{\"type\":\"string\"},"                     \
    "\"kernel\":{\"type\":\"string\"},\"default\":{\"type\":\"boolean\"},"                         \
    "\"sessions\":{\"type\":\"integer\"},\"created_at\":{\"type\":\"string\"},"                    \
    "\"expires_at\":{\"type\":[\"string\",\"null\"]},\"persistent\":{\"type\":\"boolean\"},"      \
    "\"pooled\":{\"type\":\"boolean\"},"                                                           \
    "\"metadata\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}"

#define OUT_LIMITS                                                                                 \
    "{\"type\":\"object\",\"properties\":{\"memory_mb\":{\"type\":\"integer\"},\"cpu\":{\"type\":" \
    "[\"number\",\"null\"]},\"disk_mb\":{\"type\":\"integer\"},\"pids\":{\"type\":\"integer\"},"   \
    "\"timeout_s\":{\"type\":\"integer\"}}}"

#define OUT_SIMPLE(props, req) "{\"type\":\"object\",\"properties\":{" props "},\"required\":[" req "]}"

/* ---- the table ----------------------------------------------------------------------------- */

static const mcp_tool_t s_tools[] = {
    {"sandbox_create", "Create a sandbox",
     "Create an isolated sandbox (no network unless its network policy allows some, its own "
     "files in /home/user, memory/CPU/disk limits) from a template (python; python-data has numpy, pandas and matplotlib imported), "
     "and return its sandbox_id. Most tools work without one: they use this session's default "
     "sandbox. Create one to get separate state, a template or other limits. A sandbox ends "
     "after its lifetime (sandbox_set_timeout extends it); with persist its files outlive it, "
     "and sandbox_create with its sandbox_id reopens them.",
     S_OBJ("\"template\":" S_STR("Sandbox template (default: the server's, usually python).") ","
           "\"kernel\":" S_STR("Kernelspec name of the main session (default: the template's).") ","
           "\"memory_mb\":" S_INT("Memory limit in MB.", 64, 1048576) ","
           "\"cpu\":" S_NUM("CPU limit in cores, such as 0.5 or 2.", 0.01, 1024) ","
           "\"disk_mb\":" S_INT("Size of the workspace /home/user in MB.", 1, 1048576) ","
           "\"timeout_s\":" S_INT("Default time limit of each execution and command, seconds.", 1, 86400) ","
           "\"lifetime_s\":" S_INT("Seconds until the sandbox is torn down (default: the server's, 300); -1: no limit.", -1, 604800) ","
           "\"persist\":" S_BOOL("Keep the workspace's files on disk after the sandbox ends.") ","
           "\"sandbox_id\":" S_STR("Reopen this persistent sandbox, with its files.") ","
           "\"env\":" S_STRMAP("Environment variables for its kernels and commands.") ","
           "\"metadata\":" S_STRMAP("Labels kept with the sandbox.") ","
           "\"network\":{\"type\":[\"string\",\"object\"],\"description\":\"Network policy: none (default), all, ask, "
           "a preset (packages), or {allow: [hosts, *.domains, CIDRs, with :port], deny: [...], "
           "presets: [...], ask: true}; E2B's allowedDomains/blockedDomains work too. Traffic goes "
           "through a proxy (HTTP_PROXY etc. are set inside).\"}",
           ""),
     OUT_SIMPLE(OUT_SANDBOX_SUMMARY_PROPS ",\"session_id\":{\"type\":\"string\"},"
                "\"limits\":" OUT_LIMITS ",\"env_keys\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}",
                "\"sandbox_id\",\"session_id\""),
     0, mcp_tool_sandbox_create},
    {"sandbox_list", "List sandboxes",
     "List the live sandboxes of this server (ids, templates, labels, when they expire), and the "
     "closed persistent ones whose files can be reopened.",
     "{\"type\":\"object\",\"additionalProperties\":false}",
     OUT_SIMPLE("\"sandboxes\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
                OUT_SANDBOX_SUMMARY_PROPS "}}},\"closed_persistent\":{\"type\":\"array\",\"items\":"
                "{\"type\":\"object\"}}", "\"sandboxes\""),
     MCP_HINT_READ_ONLY | MCP_HINT_IDEMPOTENT, mcp_tool_sandbox_list},
    {"sandbox_info", "Describe a sandbox",
     "Show a sandbox's limits, network policy, isolation layers, resource usage and sessions.",
     S_OBJ(P_SANDBOX, ""),
     OUT_SIMPLE(OUT_SANDBOX_SUMMARY_PROPS ",\"limits\":" OUT_LIMITS ",\"layers\":{\"type\":\"object\"},"
                "\"usage\":{\"type\":\"object\"},\"network\":{\"type\":\"object\"},\"session_list\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}",
                "\"sandbox_id\""),
     MCP_HINT_READ_ONLY | MCP_HINT_IDEMPOTENT, mcp_tool_sandbox_info},
    {"sandbox_delete", "Delete a sandbox",
     "Stop everything in a sandbox and remove it with its files (a persistent sandbox keeps its "
     "files unless discard_workspace). Running executions in it end as cancelled.",
     S_OBJ(P_SANDBOX ",\"discard_workspace\":" S_BOOL("Also remove a persistent sandbox's files (it may be closed already)."),
           "\"sandbox_id\""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"deleted\":{\"type\":\"boolean\"},"
                "\"workspace_kept\":{\"type\":\"boolean\"}", "\"sandbox_id\",\"deleted\""),
     MCP_HINT_DESTRUCTIVE | MCP_HINT_IDEMPOTENT, mcp_tool_sandbox_delete},
    {"sandbox_expose_port", "Open a server in a sandbox by URL",
     "Expose a TCP port inside a sandbox (a web server, a notebook, an API you started there) at a "
     "URL of this server: url (path form) and host_url ({port}-{id}.localhost) need the server's "
     "token; signed_url opens in a browser as it is until expires_at (it sets a cookie for that "
     "port only). HTTP, streaming responses and WebSockets are forwarded. A port is private until "
     "exposed.",
     S_OBJ(P_SANDBOX ",\"port\":" S_INT("The TCP port inside the sandbox.", 1, 65535) ","
           "\"link_lifetime_s\":" S_INT("How long signed_url stays valid; default 86400.", 1, 31536000),
           "\"port\""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"port\":{\"type\":\"integer\"},"
                "\"url\":{\"type\":\"string\"},\"host_url\":{\"type\":\"string\"},"
                "\"host\":{\"type\":\"string\"},\"signed_url\":{\"type\":\"string\"},"
                "\"signed_host_url\":{\"type\":\"string\"},\"expires_at\":{\"type\":\"string\"}",
                "\"sandbox_id\",\"port\",\"url\",\"host_url\",\"signed_url\",\"expires_at\""),
     MCP_HINT_IDEMPOTENT, mcp_tool_sandbox_expose_port},
    {"sandbox_unexpose_port", "Close a sandbox's exposed port",
     "Make an exposed port private again; its open forwarded connections (WebSockets too) close.",
     S_OBJ(P_SANDBOX ",\"port\":" S_INT("The TCP port inside the sandbox.", 1, 65535), "\"port\""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"port\":{\"type\":\"integer\"},"
                "\"was_exposed\":{\"type\":\"boolean\"}", "\"sandbox_id\",\"port\""),
     MCP_HINT_IDEMPOTENT, mcp_tool_sandbox_unexpose_port},
    {"sandbox_set_timeout", "Set a sandbox's lifetime",
     "Like E2B's set_timeout: the sandbox is torn down lifetime_s seconds from now (extend it "
     "before it runs out; -1: no limit).",
     S_OBJ(P_SANDBOX ",\"lifetime_s\":" S_INT("Seconds from now; -1: no limit.", -1, 604800), "\"lifetime_s\""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"expires_at\":{\"type\":[\"string\",\"null\"]}",
                "\"sandbox_id\""),
     MCP_HINT_IDEMPOTENT, mcp_tool_sandbox_set_timeout},

    {"code_execute", "Run code",
     "Run code in a sandbox's Jupyter kernel, like a notebook cell: variables, imports and files "
     "persist from call to call. Returns stdout, stderr, rich results (charts come back as "
     "images, tables as text and HTML) and errors with their traceback.",
     IN_CODE_PACKAGES, OUT_EXECUTION, 0, mcp_tool_code_execute},
    {"run_code", "Run Python code",
     "Run Python code in this session's sandbox (state persists between calls) and return its "
     "output, results and charts. The same as code_execute without a sandbox id.",
     S_OBJ("\"code\":" S_STR("The Python code to run.") "," P_PACKAGES, "\"code\""), OUT_EXECUTION, 0,
     mcp_tool_run_code},
    {"code_execute_async", "Start running code",
     "Start code in a sandbox's kernel and return an execution_id at once; follow it with "
     "execution_status. For long runs.",
     IN_CODE,
     OUT_SIMPLE("\"execution_id\":{\"type\":\"string\"},\"sandbox_id\":{\"type\":\"string\"},"
                "\"session_id\":{\"type\":\"string\"},\"state\":{\"type\":\"string\"}",
                "\"execution_id\",\"state\""),
     0, mcp_tool_code_execute_async},
    {"execution_status", "Check an execution",
     "The state of an execution started by code_execute_async or a background command_execute: "
     "its output so far, or its final result. wait_s waits for it to finish first.",
     S_OBJ("\"execution_id\":" S_STR("The id returned when it started.") ","
           "\"wait_s\":" S_NUM("Wait up to this many seconds for it to finish.", 0, 60),
           "\"execution_id\""),
     OUT_SIMPLE("\"execution_id\":{\"type\":\"string\"},\"kind\":{\"type\":\"string\",\"enum\":[\"code\",\"command\"]},"
                "\"state\":{\"type\":\"string\",\"enum\":[\"queued\",\"running\",\"done\"]},"
                "\"result\":{\"type\":\"object\"}",
                "\"execution_id\",\"kind\",\"state\",\"result\""),
     MCP_HINT_READ_ONLY, mcp_tool_execution_status},
    {"execution_cancel", "Stop an execution",
     "Interrupt a running execution (the kernel keeps its variables) or kill a background command.",
     S_OBJ("\"execution_id\":" S_STR("The id returned when it started."), "\"execution_id\""),
     OUT_SIMPLE("\"execution_id\":{\"type\":\"string\"},\"state\":{\"type\":\"string\"}", "\"execution_id\""),
     0, mcp_tool_execution_cancel},
    {"command_execute", "Run a shell command",
     "Run a shell command (bash -c) in a sandbox and return its exit code, stdout and stderr. "
     "With background true it returns at once with its command_id and pid (no time limit unless "
     "timeout_s is given); process_output reads its output later, execution_status waits for its "
     "end, process_kill stops it. Daemons a command starts (&, nohup, setsid) keep running after "
     "it returns, until the sandbox ends or process_kill stops them.",
     S_OBJ("\"command\":" S_STR("The command line.") "," P_SANDBOX ","
           "\"cwd\":" S_STR("Working directory (default /home/user).") ","
           "\"env\":" S_STRMAP("Extra environment variables.") "," P_TIMEOUT ","
           "\"stdin\":" S_STR("Text written to the command's stdin.") ","
           "\"background\":" S_BOOL("Return at once with its id instead of waiting."),
           "\"command\""),
     OUT_COMMAND, 0, mcp_tool_command_execute},
    {"process_list", "List processes",
     "List every process in a sandbox: pid and ppid inside the sandbox, command line, state, "
     "start time, and the command_id when command_execute started it.",
     S_OBJ(P_SANDBOX, ""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"processes\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                "\"properties\":{\"pid\":{\"type\":\"integer\"},\"ppid\":{\"type\":\"integer\"},\"command\":{\"type\":\"string\"},"
                "\"name\":{\"type\":\"string\"},\"state\":{\"type\":\"string\"},\"started_at\":{\"type\":\"string\"},"
                "\"command_id\":{\"type\":[\"string\",\"null\"]}}}}",
                "\"sandbox_id\",\"processes\""),
     MCP_HINT_READ_ONLY | MCP_HINT_IDEMPOTENT, mcp_tool_process_list},
    {"process_kill", "Signal a process",
     "Send a signal (default SIGKILL) to a process in a sandbox, by its pid inside the sandbox "
     "(process_list) or by command_id (the command's whole process group, its background jobs "
     "too). The sandbox's init (pid 1) and pids outside the sandbox are refused.",
     S_OBJ("\"command_id\":" S_STR("A command from command_execute.") ","
           "\"pid\":" S_INT("A pid inside the sandbox, as process_list shows.", 1, 4194304) ","
           "\"signal\":" S_STR("SIGKILL (default), SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT, SIGALRM or SIGWINCH.") ","
           P_SANDBOX, ""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"signal\":{\"type\":\"string\"},\"sent\":{\"type\":\"boolean\"},"
                "\"command_id\":{\"type\":\"string\"},\"pid\":{\"type\":\"integer\"}",
                "\"sandbox_id\",\"signal\",\"sent\""),
     MCP_HINT_DESTRUCTIVE, mcp_tool_process_kill},
    {"process_output", "Read a background command's output",
     "Read a background command's stdout and stderr so far, from byte offsets (pass the "
     "*_next of the previous call to get only what is new), and whether it still runs and its "
     "exit code. Only the latest output of a long-running command is kept (256 KiB to 512 KiB "
     "per stream); *_skipped says how much was lost before an offset.",
     S_OBJ("\"command_id\":" S_STR("A background command from command_execute.") ","
           "\"stdout_offset\":" S_INT("First byte of stdout to read (default 0).", 0, 1099511627776) ","
           "\"stderr_offset\":" S_INT("First byte of stderr to read (default 0).", 0, 1099511627776) ","
           "\"max_bytes\":" S_INT("Most bytes to read of each stream (default 65536).", 1, 1048576) ","
           P_SANDBOX, "\"command_id\""),
     OUT_SIMPLE("\"command_id\":{\"type\":\"string\"},\"sandbox_id\":{\"type\":\"string\"},\"running\":{\"type\":\"boolean\"},"
                "\"status\":{\"type\":\"string\"},\"exit_code\":{\"type\":[\"integer\",\"null\"]},\"pid\":{\"type\":[\"integer\",\"null\"]},"
                "\"stdout\":{\"type\":\"string\"},\"stderr\":{\"type\":\"string\"},"
                "\"stdout_offset\":{\"type\":\"integer\"},\"stderr_offset\":{\"type\":\"integer\"},"
                "\"stdout_next\":{\"type\":\"integer\"},\"stderr_next\":{\"type\":\"integer\"}",
                "\"command_id\",\"running\",\"stdout\",\"stderr\",\"stdout_next\",\"stderr_next\""),
     MCP_HINT_READ_ONLY, mcp_tool_process_output},

    {"file_upload", "Write a file",
     "Write a file into a sandbox's workspace (/home/user), creating parent directories. "
     "content is text, or base64 with encoding base64.",
     S_OBJ(P_PATH("Where, e.g. data.csv or /home/user/data.csv.") ","
           "\"content\":" S_STR("The file's content.") ","
           "\"encoding\":{\"type\":\"string\",\"enum\":[\"text\",\"base64\"],\"description\":\"How content is given (default text).\"},"
           P_SANDBOX,
           "\"path\",\"content\""),
     OUT_SIMPLE("\"path\":{\"type\":\"string\"},\"bytes\":{\"type\":\"integer\"}", "\"path\",\"bytes\""),
     MCP_HINT_IDEMPOTENT, mcp_tool_file_upload},
    {"file_download", "Read a file",
     "Read a file from a sandbox's workspace as text or base64 (images also come as images). "
     "offset and max_bytes read a large file in parts.",
     S_OBJ(P_PATH("The file, e.g. out.png or /home/user/out.png.") ","
           "\"encoding\":{\"type\":\"string\",\"enum\":[\"auto\",\"text\",\"base64\"],\"description\":\"auto (default): text when the bytes are UTF-8.\"},"
           "\"offset\":" S_INT("First byte to read.", 0, 1099511627776) ","
           "\"max_bytes\":" S_INT("Most bytes to read (default 1 MiB).", 1, 2097152) ","
           P_SANDBOX,
           "\"path\""),
     OUT_SIMPLE("\"path\":{\"type\":\"string\"},\"size\":{\"type\":\"integer\"},\"offset\":{\"type\":\"integer\"},"
                "\"bytes\":{\"type\":\"integer\"},\"encoding\":{\"type\":\"string\"},\"content\":{\"type\":\"string\"},"
                "\"truncated\":{\"type\":\"boolean\"},\"mime_type\":{\"type\":\"string\"}",
                "\"path\",\"size\",\"content\",\"encoding\""),
     MCP_HINT_READ_ONLY | MCP_HINT_IDEMPOTENT, mcp_tool_file_download},
    {"file_list", "List a directory", "List a directory of a sandbox's workspace (default /home/user).",
     S_OBJ(P_PATH("The directory (default /home/user).") "," P_SANDBOX, ""),
     OUT_SIMPLE("\"path\":{\"type\":\"string\"},\"entries\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                "\"properties\":{\"name\":{\"type\":\"string\"},\"type\":{\"type\":\"string\"},"
                "\"size\":{\"type\":\"integer\"},\"mtime_ms\":{\"type\":\"integer\"}}}}",
                "\"path\",\"entries\""),
     MCP_HINT_READ_ONLY | MCP_HINT_IDEMPOTENT, mcp_tool_file_list},
    {"file_delete", "Delete a file", "Delete a file, or a directory with recursive true, in a sandbox's workspace.",
     S_OBJ(P_PATH("The file or directory.") ",\"recursive\":" S_BOOL("Delete a directory and everything in it.") "," P_SANDBOX,
           "\"path\""),
     OUT_SIMPLE("\"path\":{\"type\":\"string\"},\"deleted\":{\"type\":\"boolean\"}", "\"path\",\"deleted\""),
     MCP_HINT_DESTRUCTIVE | MCP_HINT_IDEMPOTENT, mcp_tool_file_delete},

    {"session_create", "Open a session",
     "Open a session in a sandbox: jupyter (a kernel with its own variables) or terminal (an "
     "interactive bash on a real terminal, TERM xterm-256color, whose directory and variables "
     "persist; REPLs, prompts and full-screen programs work). Use it with session_execute; a "
     "terminal also with terminal_send, terminal_read and terminal_resize.",
     S_OBJ("\"type\":{\"type\":\"string\",\"enum\":[\"jupyter\",\"terminal\"],\"description\":\"jupyter (default) or terminal.\"},"
           "\"kernel\":" S_STR("Kernelspec name for a jupyter session.") ","
           "\"language\":" S_STR("Instead of kernel: the language of a new jupyter session, one of " JP_LANGUAGE_NAMES ".") ","
           "\"cols\":" S_INT("A terminal's width (default 80).", 1, 1000) ","
           "\"rows\":" S_INT("A terminal's height (default 24).", 1, 500) "," P_SANDBOX,
           ""),
     OUT_SIMPLE("\"session_id\":{\"type\":\"string\"},\"sandbox_id\":{\"type\":\"string\"},"
                "\"type\":{\"type\":\"string\"},\"kernel\":{\"type\":[\"string\",\"null\"]}",
                "\"session_id\",\"sandbox_id\",\"type\""),
     0, mcp_tool_session_create},
    {"session_execute", "Run in a session",
     "Run code in a jupyter session, or shell input in a terminal session, and return its output "
     "(a terminal's stdout and stderr come as stdout, as on a screen). When a terminal input runs "
     "past timeout_s, its program is interrupted (as ctrl-c) and the session stays usable.",
     S_OBJ("\"session_id\":" S_STR("The session.") ",\"input\":" S_STR("Code, or shell input.") ","
           P_TIMEOUT ",\"stdin\":" S_STR("Lines answered to input() (jupyter)."),
           "\"session_id\",\"input\""),
     "{\"type\":\"object\",\"properties\":{" OUT_EXECUTION_PROPS ",\"type\":{\"type\":\"string\"},"
     "\"exit_code\":{\"type\":[\"integer\",\"null\"]}},\"required\":[\"session_id\",\"status\"]}",
     0, mcp_tool_session_execute},
    {"session_close", "Close a session", "Close a session: stop its kernel or shell.",
     S_OBJ("\"session_id\":" S_STR("The session."), "\"session_id\""),
     OUT_SIMPLE("\"session_id\":{\"type\":\"string\"},\"closed\":{\"type\":\"boolean\"}", "\"session_id\",\"closed\""),
     MCP_HINT_DESTRUCTIVE | MCP_HINT_IDEMPOTENT, mcp_tool_session_close},
    {"terminal_send", "Type into a terminal",
     "Type into a terminal session: text as is, then named keys in order (enter, tab, escape, "
     "backspace, up, down, left, right, home, end, delete, insert, pageup, pagedown, space, "
     "f1-f4, ctrl-a ... ctrl-z, e.g. ctrl-c). Works while session_execute runs (to answer a "
     "prompt) or to drive a REPL; terminal_read shows the result.",
     S_OBJ("\"session_id\":" S_STR("The terminal session.") ","
           "\"text\":" S_STR("Text to type (a newline is typed as is; the enter key is keys: [enter]).") ","
           "\"keys\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":256,\"description\":\"Keys typed after text.\"}",
           "\"session_id\""),
     OUT_SIMPLE("\"session_id\":{\"type\":\"string\"},\"bytes\":{\"type\":\"integer\"}", "\"session_id\",\"bytes\""),
     0, mcp_tool_terminal_send},
    {"terminal_read", "Read a terminal's screen",
     "The screen of a terminal session as rows of text with the cursor position, and with "
     "raw_offset the raw output (escape sequences included) from that byte offset on (pass the "
     "raw_next of the previous read). busy says whether a session_execute input runs.",
     S_OBJ("\"session_id\":" S_STR("The terminal session.") ","
           "\"raw_offset\":" S_INT("Also return the raw output from this offset.", 0, 1099511627776) ","
           "\"max_bytes\":" S_INT("Most raw bytes to return (default 1 MiB).", 1, 1048576),
           "\"session_id\""),
     OUT_SIMPLE("\"session_id\":{\"type\":\"string\"},\"screen\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
                "\"cursor\":{\"type\":\"object\",\"properties\":{\"row\":{\"type\":\"integer\"},\"col\":{\"type\":\"integer\"}}},"
                "\"cols\":{\"type\":\"integer\"},\"rows\":{\"type\":\"integer\"},\"busy\":{\"type\":\"boolean\"},"
                "\"foreground\":{\"type\":\"string\",\"enum\":[\"shell\",\"program\",\"unknown\"]},"
                "\"raw\":{\"type\":\"string\"},\"raw_offset\":{\"type\":\"integer\"},\"raw_next\":{\"type\":\"integer\"}",
                "\"session_id\",\"screen\",\"cursor\",\"raw_next\""),
     MCP_HINT_READ_ONLY, mcp_tool_terminal_read},
    {"terminal_resize", "Resize a terminal",
     "Set a terminal session's size; the program in it gets SIGWINCH.",
     S_OBJ("\"session_id\":" S_STR("The terminal session.") ","
           "\"cols\":" S_INT("Columns.", 1, 1000) ",\"rows\":" S_INT("Rows.", 1, 500),
           "\"session_id\",\"cols\",\"rows\""),
     OUT_SIMPLE("\"session_id\":{\"type\":\"string\"},\"cols\":{\"type\":\"integer\"},\"rows\":{\"type\":\"integer\"}",
                "\"session_id\",\"cols\",\"rows\""),
     MCP_HINT_IDEMPOTENT, mcp_tool_terminal_resize},
    {"session_connect", "Connect Jupyter to a session",
     "Get a Jupyter connection file for a session's kernel (default: the main session of the "
     "sandbox), so a person on this machine can run `jupyter console --existing FILE` and work "
     "in the same live kernel; and the kernel's id, under which JupyterLab connected to "
     "`cellblock serve` (--gateway-url) lists the same kernel.",
     S_OBJ("\"session_id\":" S_STR("The jupyter session.") "," P_SANDBOX, ""),
     OUT_SIMPLE("\"session_id\":{\"type\":\"string\"},\"kernel_id\":{\"type\":\"string\"},"
                "\"connection_file\":{\"type\":\"string\"},\"command\":{\"type\":\"string\"}",
                "\"session_id\",\"kernel_id\",\"connection_file\",\"command\""),
     MCP_HINT_READ_ONLY, mcp_tool_session_connect},
    {"kernel_restart", "Restart a kernel",
     "Restart a jupyter session's kernel (default: the main session of the sandbox) and wait "
     "until it is ready. Its state is lost: variables, imports and definitions are gone; files "
     "in /home/user stay. Use it when a kernel is stuck, or died and was not restarted.",
     S_OBJ("\"session_id\":" S_STR("The jupyter session (default: the sandbox's main session).") "," P_SANDBOX, ""),
     OUT_SIMPLE("\"session_id\":{\"type\":\"string\"},\"sandbox_id\":{\"type\":\"string\"},"
                "\"kernel\":{\"type\":\"string\"},\"kernel_id\":{\"type\":\"string\"},"
                "\"state\":{\"type\":\"string\"},\"state_lost\":{\"type\":\"boolean\"},"
                "\"restart_count\":{\"type\":\"integer\"},\"expires_at\":{\"type\":[\"string\",\"null\"]}",
                "\"session_id\",\"sandbox_id\",\"state_lost\""),
     MCP_HINT_DESTRUCTIVE, mcp_tool_kernel_restart},

    {"sandbox_logs", "Read a sandbox's log",
     "The last lines of a sandbox's log: its kernels' stderr and lifecycle events (started, "
     "died, restarted, out of memory).",
     S_OBJ(P_SANDBOX ",\"lines\":" S_INT("How many of the last lines (default 100).", 1, 1000), ""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"entries\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                "\"properties\":{\"time\":{\"type\":\"string\"},\"source\":{\"type\":\"string\"},\"text\":{\"type\":\"string\"}}}}",
                "\"sandbox_id\",\"entries\""),
     MCP_HINT_READ_ONLY, mcp_tool_sandbox_logs},
    {"sandbox_history", "A sandbox's audit trail",
     "What happened in a sandbox, oldest first, from the audit log: executions (code, status, "
     "error name, duration, route), commands (line, exit code), file writes and deletes (path, "
     "size), sessions started and ended, and its lifecycle (opened, reopened, timeout set, "
     "ended and why). Works for a sandbox that has ended too.",
     S_OBJ(P_SANDBOX ",\"since\":" S_STR("Only records at or after this: ISO 8601 (2026-12-08T02:30:00Z) or an age (30s, 10m, 2h, 1d).")
           ",\"limit\":" S_INT("At most this many, the latest (default 100).", 1, 10000), ""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"records\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                "\"properties\":{\"time\":{\"type\":\"string\"},\"tenant\":{\"type\":\"string\"},\"event\":{\"type\":\"string\"}}}}",
                "\"sandbox_id\",\"records\""),
     MCP_HINT_READ_ONLY, mcp_tool_sandbox_history},
    {"sandbox_metrics", "Measure a sandbox",
     "CPU time and share, memory (current, peak, limit), processes, disk use, executions, "
     "uptime and network use (totals and the last 20 connections) of a sandbox.",
     S_OBJ(P_SANDBOX ",\"network\":" S_BOOL("List every connection record kept, not only the last 20."), ""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"cpu_time_s\":{\"type\":\"number\"},"
                "\"memory_bytes\":{\"type\":\"integer\"},\"memory_peak_bytes\":{\"type\":\"integer\"},"
                "\"memory_limit_bytes\":{\"type\":\"integer\"},\"pids\":{\"type\":\"integer\"},"
                "\"pids_limit\":{\"type\":\"integer\"},\"disk_used_bytes\":{\"type\":\"integer\"},"
                "\"disk_limit_bytes\":{\"type\":\"integer\"},\"oom_kills\":{\"type\":\"integer\"},"
                "\"uptime_s\":{\"type\":\"number\"},\"executions\":{\"type\":\"integer\"},"
                "\"cpu_share\":{\"type\":\"number\"},\"cpu_share_avg\":{\"type\":\"number\"},"
                "\"commands\":{\"type\":\"integer\"},\"idle_s\":{\"type\":\"number\"},"
                "\"tmp_used_bytes\":{\"type\":\"integer\"},\"shm_used_bytes\":{\"type\":\"integer\"},"
                "\"tmp_limit_bytes\":{\"type\":\"integer\"},\"network\":{\"type\":\"object\"},"
                "\"expires_at\":{\"type\":[\"string\",\"null\"]}",
                "\"sandbox_id\""),
     MCP_HINT_READ_ONLY, mcp_tool_sandbox_metrics},
    {"server_metrics", "Measure the server",
     "Server-wide counters: sandboxes (live, pooled, refused at the cap, expired, culled, died), "
     "warm pool hits, kernels (started, died, restarted, out of memory), executions and errors, "
     "commands, rejected message signatures.",
     "{\"type\":\"object\",\"additionalProperties\":false}",
     OUT_SIMPLE("\"uptime_s\":{\"type\":\"number\"},\"sandboxes\":{\"type\":\"object\"},"
                "\"pool\":{\"type\":\"object\"},\"kernels\":{\"type\":\"object\"},"
                "\"executions\":{\"type\":\"object\"},\"commands\":{\"type\":\"integer\"},"
                "\"messages\":{\"type\":\"object\"}", "\"sandboxes\""),
     MCP_HINT_READ_ONLY, mcp_tool_server_metrics},
    {"notebook_run", "Run a notebook",
     "Run a Jupyter notebook (.ipynb) in a sandbox: its code cells in order, in a fresh kernel for "
     "the notebook's language (metadata.kernelspec / language_info; python3 when it names none), "
     "stopping at the first error unless allow_errors (or the cell is tagged raises-exception), "
     "as nbclient does. The executed notebook (outputs, execution counts, errors) is written to "
     "the workspace: output_path, default next to the input as NAME.nbconvert.ipynb. Returns "
     "which cells ran, the failing cell, and a link to the executed notebook.",
     S_OBJ(P_PATH("A notebook in the workspace, e.g. analysis.ipynb.") ","
           "\"notebook\":{\"type\":[\"object\",\"string\"],\"description\":\"The notebook itself (nbformat 4), as an object or as JSON text, instead of path.\"},"
           P_SANDBOX ","
           "\"allow_errors\":" S_BOOL("Run every cell even when one raises (default false).") ","
           "\"kernel\":" S_STR("A kernelspec name, instead of the notebook's own.") ","
           "\"timeout_s\":" S_NUM("Time limit per cell in seconds; default none.", 0.001, 86400) ","
           "\"output_path\":" S_STR("Where the executed notebook goes in the workspace."),
           ""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"output_path\":{\"type\":\"string\"},"
                "\"kernel\":{\"type\":\"string\"},\"cells\":{\"type\":\"integer\"},"
                "\"errors\":{\"type\":\"integer\"},\"failed_cell\":{\"type\":[\"integer\",\"null\"]},"
                "\"status\":{\"type\":\"string\"},\"error\":{\"type\":[\"object\",\"null\"]}",
                "\"output_path\",\"cells\",\"errors\",\"status\""),
     0, mcp_tool_notebook_run},
    {"session_export", "Export a session as a notebook",
     "Write a session's executed cells (code, outputs, execution counts, in order) as a Jupyter "
     "notebook into the workspace (default notebooks/session-ID.ipynb) and return it as a "
     "resource. Default: the main session of the sandbox (or of this client's default sandbox).",
     S_OBJ("\"session_id\":" S_STR("The session (a jupyter one); default: the sandbox's main session.") ","
           P_SANDBOX "," P_PATH("Where to write it in the workspace."),
           ""),
     OUT_SIMPLE("\"sandbox_id\":{\"type\":\"string\"},\"session_id\":{\"type\":\"string\"},"
                "\"path\":{\"type\":\"string\"},\"uri\":{\"type\":\"string\"},"
                "\"cells\":{\"type\":\"integer\"},\"cells_dropped\":{\"type\":\"integer\"}",
                "\"session_id\",\"path\",\"uri\",\"cells\""),
     0, mcp_tool_session_export},
};
// clang-format on
#define N_TOOLS (sizeof s_tools / sizeof s_tools[0])

size_t mcp_tool_index(const mcp_tool_t *tool) { return (size_t)(tool - s_tools); }

const mcp_tool_t *mcp_tool_find(const char *name)
{
    for (size_t i = 0; name && i < N_TOOLS; i++)
        if (strcmp(s_tools[i].name, name) == 0)
            return &s_tools[i];
    return NULL;
}

static json_t *s_parse_schema(const char *tool, const char *text, cb_error_t *err)
{
    json_error_t jerr;
    json_t *schema = json_loads(text, 0, &jerr);
    if (!schema)
        cb_error_fail(err, CB_ERR_INTERNAL, "tool %s: schema does not parse: %s at %d", tool,
                      jerr.text, jerr.position);
    return schema;
}

json_t *mcp_tools_list(cb_error_t *err)
{
    json_auto_t *tools = json_array();
    for (size_t i = 0; tools && i < N_TOOLS; i++) {
        const mcp_tool_t *t = &s_tools[i];
        json_t *in = s_parse_schema(t->name, t->input_schema, err);
        json_t *out = t->output_schema ? s_parse_schema(t->name, t->output_schema, err) : NULL;
        if (!in || (t->output_schema && !out)) {
            json_decref(in);
            json_decref(out);
            return NULL;
        }
        json_t *entry =
            json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:b, s:b, s:b, s:b}}", "name", t->name, "title",
                      t->title, "description", t->description, "inputSchema", in, "annotations",
                      "title", t->title, "readOnlyHint", (t->hints & MCP_HINT_READ_ONLY) != 0,
                      "destructiveHint", (t->hints & MCP_HINT_DESTRUCTIVE) != 0, "idempotentHint",
                      (t->hints & MCP_HINT_IDEMPOTENT) != 0, "openWorldHint", 0);
        if (entry && out)
            json_object_set_new(entry, "outputSchema", out);
        else
            json_decref(out);
        if (!entry || json_array_append_new(tools, entry) < 0) {
            cb_error_fail(err, CB_ERR_INTERNAL, "out of memory listing tools");
            return NULL;
        }
    }
    return json_pack("{s:O}", "tools", tools);
}

/* ---- argument checks ----------------------------------------------------------------------- */

static const char *s_type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static bool s_has_type(json_t *v, const char *type)
{
    if (strcmp(type, "string") == 0)
        return json_is_string(v);
    if (strcmp(type, "integer") == 0)
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)));
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(type, "object") == 0)
        return json_is_object(v);
    if (strcmp(type, "array") == 0)
        return json_is_array(v);
    return json_is_null(v) && strcmp(type, "null") == 0;
}

static int s_check_value(const char *name, json_t *v, json_t *schema, char *msg, size_t size)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (type && !s_has_type(v, type)) {
        snprintf(msg, size, "argument '%s' must be %s %s, not %s", name,
                 strchr("aeiou", type[0]) ? "an" : "a", type, s_type_name(v));
        return -1;
    }
    json_t *choices = json_object_get(schema, "enum");
    if (choices) {
        size_t i;
        json_t *c;
        json_array_foreach (choices, i, c)
            if (json_equal(c, v))
                return 0;
        char list[200] = "";
        json_array_foreach (choices, i, c)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     json_string_value(c) ? json_string_value(c) : "?");
        snprintf(msg, size, "argument '%s' must be one of: %s", name, list);
        return -1;
    }
    json_t *min = json_object_get(schema, "minimum"), *max = json_object_get(schema, "maximum");
    if (json_is_number(v) && ((min && json_number_value(v) < json_number_value(min)) ||
                              (max && json_number_value(v) > json_number_value(max)))) {
        snprintf(msg, size, "argument '%s' must be from %g to %g, not %g", name,
                 json_number_value(min), json_number_value(max), json_number_value(v));
        return -1;
    }
    json_t *values = json_object_get(schema, "additionalProperties");
    if (json_is_object(v) && json_is_object(values)) {
        const char *key;
        json_t *item;
        json_object_foreach (v, key, item)
            if (!json_is_string(item)) {
                snprintf(msg, size, "argument '%s': the value of '%.60s' must be a string, not %s",
                         name, key, s_type_name(item));
                return -1;
            }
    }
    return 0;
}

int mcp_tool_check_args(json_t *schema, json_t *args, char *msg, size_t size)
{
    if (!json_is_object(args)) {
        snprintf(msg, size, "arguments must be an object, not %s", s_type_name(args));
        return -1;
    }
    json_t *props = json_object_get(schema, "properties");
    const char *key;
    json_t *value;
    json_object_foreach (args, key, value) {
        json_t *prop = json_object_get(props, key);
        if (!prop) {
            char known[300] = "";
            const char *k;
            json_t *p;
            json_object_foreach (props, k, p)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         known[0] ? ", " : "", k);
            snprintf(msg, size, "unknown argument '%.60s' (this tool takes: %s)", key,
                     known[0] ? known : "none");
            return -1;
        }
        if (s_check_value(key, value, prop, msg, size) < 0)
            return -1;
    }
    size_t i;
    json_array_foreach (json_object_get(schema, "required"), i, value)
        if (!json_object_get(args, json_string_value(value))) {
            snprintf(msg, size, "missing required argument '%s'", json_string_value(value));
            return -1;
        }
    return 0;
}

const char *mcp_arg_str(json_t *args, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(args, key));
    return v ? v : dflt;
}

double mcp_arg_num(json_t *args, const char *key, double dflt)
{
    json_t *v = json_object_get(args, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

bool mcp_arg_bool(json_t *args, const char *key, bool dflt)
{
    json_t *v = json_object_get(args, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}
