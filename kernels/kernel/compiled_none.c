/* kernels/kernel/compiled_none.c: a stand-in for compiled.c until it lands.
 *
 * REMOVE THIS FILE (and its line in CMakeLists.txt) WHEN compiled.c ARRIVES: it only says that
 * no compiled language is known, so main.c links before the compiled driver exists. It is weak,
 * so a real kn_compiled_driver wins should both be linked.
 */
#include <stddef.h>

#include "kn.h"

__attribute__((weak)) const kn_driver_ops_t *kn_compiled_driver(const char *name)
{
    (void)name;
    return NULL;
}
