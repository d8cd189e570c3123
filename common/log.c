/* log.c: the level-checked logger behind cb_log(). One line per call, prefixed with a UTC time,
 * the level and the source location, written with a single fprintf so lines do not interleave. */
#include "cb/log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "cb/util.h"

cb_log_level_t cb_log_level_current = CB_LOG_WARN;
static FILE *s_sink = NULL;

void cb_log_set_level(cb_log_level_t level) { cb_log_level_current = level; }

void cb_log_set_sink(FILE *sink) { s_sink = sink; }

int cb_log_level_parse(const char *name, cb_log_level_t *out)
{
    static const struct {
        const char *name;
        cb_log_level_t level;
    } table[] = {{"debug", CB_LOG_DEBUG}, {"info", CB_LOG_INFO},   {"warn", CB_LOG_WARN},
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
    fprintf(s_sink ? s_sink : stderr, "%s cellblock %s %s:%d: %s\n", cb_iso8601_now(when),
            level <= CB_LOG_ERROR ? names[level] : "?", base ? base + 1 : file, line, text);
}
