/* cb/log.h: level-checked logging to stderr (or another sink).
 *
 * The arguments of a call below the current level are never evaluated. Logs always go to stderr
 * by default: in stdio MCP mode stdout belongs to the protocol. Never log keys, connection files
 * or user code above debug. The level and sink are the only process-wide settings. */
#ifndef CB_LOG_H
#define CB_LOG_H

#include <stdio.h>

typedef enum {
    CB_LOG_DEBUG = 0,
    CB_LOG_INFO,
    CB_LOG_WARN,
    CB_LOG_ERROR,
    CB_LOG_OFF
} cb_log_level_t;

/* The lowest level anything listens to (stderr or the hook); maintained by the setters. */
extern cb_log_level_t cb_log_level_current;

/* The level of the stderr (sink) output. */
void cb_log_set_level(cb_log_level_t level);
cb_log_level_t cb_log_get_level(void);
/* Parse "debug", "info", "warn"/"warning", "error", "off"; returns -1 for anything else. */
int cb_log_level_parse(const char *name, cb_log_level_t *out);
/* Send log lines to this stream (borrowed; NULL restores stderr). */
void cb_log_set_sink(FILE *sink);

/* A second listener, called with each line at or above its own level (the MCP server forwards
 * them to its client as notifications/message). fn NULL removes it. Lines logged while the hook
 * runs do not reach it again. */
typedef void(cb_log_hook_fn)(cb_log_level_t level, const char *text, void *arg);
void cb_log_set_hook(cb_log_hook_fn *fn, void *arg, cb_log_level_t level);

void cb_log_write(cb_log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define cb_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= cb_log_level_current)                                                       \
            cb_log_write((level), __FILE__, __LINE__, __VA_ARGS__);                                \
    } while (0)

#define cb_debug(...) cb_log(CB_LOG_DEBUG, __VA_ARGS__)
#define cb_info(...) cb_log(CB_LOG_INFO, __VA_ARGS__)
#define cb_warn(...) cb_log(CB_LOG_WARN, __VA_ARGS__)
#define cb_err(...) cb_log(CB_LOG_ERROR, __VA_ARGS__)

#endif
