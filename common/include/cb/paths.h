/* cb/paths.h: where cellblock finds its own files (kernelspecs, templates, the sandbox init).
 *
 * One rule, in one place. The files live beside the running executable, the way `cmake --install`
 * lays them out (GNUInstallDirs, relative to the install prefix):
 *
 *     <prefix>/bin/cellblock
 *     <prefix>/libexec/cellblock/cellblock-init     cb_path_libexecdir(), cb_path_init()
 *     <prefix>/share/cellblock/{kernels,templates}  cb_path_datadir()
 *
 * <prefix> is found from the executable's real location (/proc/self/exe, symlinks resolved),
 * never from a path baked in at build time: a build or source tree on a shared machine may be
 * writable by others, and whoever could create such a path would pick the sandbox's PID 1 and
 * the kernelspecs. The build tree is laid out like a prefix (build/bin, build/libexec/cellblock,
 * build/share/cellblock), so the same rule serves development, the tests and an install.
 *
 * Only explicit settings override it (docs/install.md):
 *     CELLBLOCK_DATA_DIR      instead of <prefix>/share/cellblock
 *     CELLBLOCK_LIBEXEC_DIR   instead of <prefix>/libexec/cellblock
 *     CELLBLOCK_INIT          the sandbox init itself (read by sandbox/, sbx_default_init_path)
 *
 * The answers are computed once, at the first call, and do not change for the life of the
 * process (the executable's location cannot); calls are thread-safe.
 */
#ifndef CB_PATHS_H
#define CB_PATHS_H

/* The install prefix: the directory above the one holding the running executable's real file
 * (<prefix>/bin/cellblock -> <prefix>). Borrowed; valid for the life of the process. */
const char *cb_path_prefix(void);

/* $CELLBLOCK_DATA_DIR, or <prefix>/share/cellblock. Borrowed; valid for the life of the process. */
const char *cb_path_datadir(void);

/* $CELLBLOCK_LIBEXEC_DIR, or <prefix>/libexec/cellblock. Borrowed; valid for the life of the
 * process. */
const char *cb_path_libexecdir(void);

/* <libexecdir>/cellblock-init: the sandbox's PID 1. Borrowed; valid for the life of the process. */
const char *cb_path_init(void);

#endif
