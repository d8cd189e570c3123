/* web_private.h: what web.c shares with the generated table of assets (web_assets.c). */
#ifndef WEB_PRIVATE_H
#define WEB_PRIVATE_H

#include <stddef.h>

typedef struct {
    const char *path; /* "/index.html", "/app.js", ... */
    const unsigned char *data;
    size_t len;
} web_asset_t;

/* The page's files, ended by {NULL, NULL, 0} (web_assets.c, made by embed.cmake). */
extern const web_asset_t web_assets[];

#endif
