/* Compiled into every target that links cb_json (an INTERFACE source, so the linker cannot drop
 * it from a static library): jansson allocates through cb_xmalloc, under the one out-of-memory
 * policy of cb/alloc.h. Runs before main, before any JSON is made. */
#include <jansson.h>
#include <stdlib.h>

#include "cb/alloc.h"

__attribute__((constructor)) static void s_cb_json_alloc_hooks(void)
{
    json_set_alloc_funcs(cb_xmalloc, free);
}
