/* log.c: the level-checked logger behind cb_log(). One line per call, prefixed with a UTC time,
 * the level and the source location, written with a single fprintf so lines do not interleave. */
#include "cb/log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "cb/util.h"

cb_log_level_t cb_log_level_current = CB_LOG_WARN;
static cb_log_level_t s_sink_level = CB_LOG_WARN;
static FILE *s_sink = NULL;
static cb_log_hook_fn *s_hook = NULL;
static void *s_hook_arg = NULL;
static cb_log_level_t s_hook_level = CB_LOG_OFF;
static int s_in_hook = 0;

static void s_update_threshold(void)
{
    cb_log_level_current = s_hook && s_hook_level < s_sink_level ? s_hook_level : s_sink_level;
}

void cb_log_set_level(cb_log_level_t level)
{
    s_sink_level = level;
    s_update_threshold();
}

cb_log_level_t cb_log_get_level(void) { return s_sink_level; }

void cb_log_set_hook(cb_log_hook_fn *fn, void *arg, cb_log_level_t level)
{
    s_hook = fn;
    s_hook_arg = arg;
    s_hook_level = fn ? level : CB_LOG_OFF;
    s_update_threshold();
}

void cb_log_set_sink(FILE *sink) { s_sink = sink; }

int cb_log_level_parse(const char *name, cb_log_level_t *out)
{
    static const struct {
        const char *name;
        cb_log_level_t level;
    } table[] = {{"debug", CB_LOG_DEBUG},  {"info", CB_LOG_INFO},   {"warn", CB_LOG_WARN},
                 {"warning", CB_LOG_WARN}, {"error", CB_LOG_ERROR}, {"off", CB_LOG_OFF}};
    for (size_t i = 0; name && i < sizeof table / sizeof table[0]; i++) {
        if (strcasecmp(name, table[i].name) == 0) {
            *out = table[i].level;
            return 0;
        }
    }
    return -1;
}

void cb_log_write(cb_log_level_t level, const char *file, int line, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    char when[CB_ISO8601_LEN];
    if (level >= s_sink_level)
        fprintf(s_sink ? s_sink : stderr, "%s cellblock %s %s:%d: %s\n", cb_iso8601_now(when),
                level <= CB_LOG_ERROR ? names[level] : "?", base ? base + 1 : file, line, text);
    if (s_hook && level >= s_hook_level && !s_in_hook) {
        s_in_hook = 1;
        s_hook(level, text, s_hook_arg);
        s_in_hook = 0;
    }
}
