/* kernels/kernel/cellrender.c: the definitions cells leave (cs_program_t), the program a cell
 * becomes (cs_render), and the compiler's output read back (rules in cellsplit.h).
 *
 * Replacement is by key in linear time (a hash set of the cell's keys); the rendered source
 * keeps, for every generated line, the cell and line it came from, and writes the line
 * directives (C/C++ #line, Go //line) before every chunk. Go's imports are written last, once
 * the rest of the program says which names it uses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb/alloc.h"
#include "cellsplit.h"
#include "cellsplit_int.h"

/* ---- a set of keys (replacement in linear time) ------------------------------------------ */

typedef struct {
    const char *key;
    size_t idx;
} s_slot_t;

typedef struct {
    s_slot_t *slots;
    size_t cap;
} s_keyset_t;

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void s_keyset_init(s_keyset_t *ks, size_t n)
{
    ks->cap = 16;
    while (ks->cap < n * 2 + 1)
        ks->cap *= 2;
    ks->slots = cb_xcalloc(ks->cap, sizeof *ks->slots);
}

/* The slot of key: its own, or the empty one where it would go. */
static s_slot_t *s_keyset_slot(const s_keyset_t *ks, const char *key)
{
    size_t i = s_hash(key) & (ks->cap - 1);
    while (ks->slots[i].key && strcmp(ks->slots[i].key, key) != 0)
        i = (i + 1) & (ks->cap - 1);
    return &ks->slots[i];
}

/* Add key with idx; false (and nothing changed) when it was there already. The set is sized
 * for the most keys it will hold (s_keyset_init), so it never fills. */
static bool s_keyset_add(s_keyset_t *ks, const char *key, size_t idx)
{
    s_slot_t *slot = s_keyset_slot(ks, key);
    if (slot->key)
        return false;
    *slot = (s_slot_t){.key = key, .idx = idx};
    return true;
}

/* The idx key was added with, or SIZE_MAX. */
static size_t s_keyset_find(const s_keyset_t *ks, const char *key)
{
    s_slot_t *slot = s_keyset_slot(ks, key);
    return slot->key ? slot->idx : SIZE_MAX;
}

static void s_keyset_free(s_keyset_t *ks) { free(ks->slots); }

/* ---- the program kept --------------------------------------------------------------------- */

struct cs_program {
    cs_lang_t lang;
    cs_item_t *items;
    size_t n, cap;
};

cs_program_t *cs_program_new(cs_lang_t lang)
{
    cs_program_t *self = cb_xcalloc(1, sizeof *self);
    self->lang = lang;
    return self;
}

void cs_program_destroy(cs_program_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cs_program_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++)
        cs_item_free(&self->items[i]);
    free(self->items);
    free(self);
    *self_p = NULL;
}

size_t cs_program_count(const cs_program_t *self) { return self->n; }

const cs_item_t *cs_program_item(const cs_program_t *self, size_t i)
{
    return i < self->n ? &self->items[i] : NULL;
}

static bool s_kept(const cs_item_t *it) { return it->kind == CS_HEAD || it->kind == CS_DEF; }

/* The merged list of kept items: the program's, with each key the cell defines taken by the
 * cell's first item of that key at the place of the program's first one (the others dropped),
 * then the cell's remaining kept items. Borrowed pointers, *n_out of them. */
static const cs_item_t **s_merge(const cs_program_t *prog, const cs_cell_t *cell, size_t *n_out)
{
    const cs_item_t **out = cb_xcalloc(prog->n + cell->n + 1, sizeof *out);
    size_t n = 0;
    s_keyset_t cell_keys, placed;
    s_keyset_init(&cell_keys, cell->n);
    s_keyset_init(&placed, cell->n);
    for (size_t i = 0; i < cell->n; i++)
        if (s_kept(&cell->items[i]) && cell->items[i].key)
            s_keyset_add(&cell_keys, cell->items[i].key, i); /* the first of each key */
    bool *used = cb_xcalloc(cell->n + 1, sizeof *used);
    for (size_t i = 0; i < prog->n; i++) {
        const cs_item_t *it = &prog->items[i];
        size_t j = it->key ? s_keyset_find(&cell_keys, it->key) : SIZE_MAX;
        if (j == SIZE_MAX) {
            out[n++] = it;
        } else if (s_keyset_add(&placed, it->key, i)) {
            out[n++] = &cell->items[j]; /* the first earlier one: its place taken */
            used[j] = true;
        }
    }
    for (size_t j = 0; j < cell->n; j++)
        if (!used[j] && s_kept(&cell->items[j]))
            out[n++] = &cell->items[j];
    free(used);
    s_keyset_free(&cell_keys);
    s_keyset_free(&placed);
    *n_out = n;
    return out;
}

static cs_item_t s_item_copy(const cs_item_t *it)
{
    return (cs_item_t){
        .kind = it->kind,
        .key = cb_xstrdup_or_null(it->key),
        .text = cb_xstrdup(it->text),
        .indent = cb_xstrdup(it->indent),
        .line = it->line,
        .cell = it->cell,
    };
}

void cs_program_commit(cs_program_t *self, const cs_cell_t *cell)
{
    size_t n;
    const cs_item_t **merged = s_merge(self, cell, &n);
    cs_item_t *items = cb_xcalloc(n + 1, sizeof *items);
    /* move the program's own survivors, copy the cell's */
    bool *moved = cb_xcalloc(self->n + 1, sizeof *moved);
    for (size_t i = 0; i < n; i++) {
        const cs_item_t *it = merged[i];
        if (it >= self->items && it < self->items + self->n) {
            items[i] = *it;
            moved[it - self->items] = true;
        } else {
            items[i] = s_item_copy(it);
        }
    }
    for (size_t i = 0; i < self->n; i++)
        if (!moved[i])
            cs_item_free(&self->items[i]);
    free(moved);
    free(merged);
    free(self->items);
    self->items = items;
    self->n = self->cap = n;
}

/* ---- rendering ---------------------------------------------------------------------------- */

struct cs_source {
    char *text;
    size_t len;
    int *cells, *lines; /* per generated line, from index 0 */
    size_t nlines;
};

typedef struct {
    cs_lang_t lang;
    cb_buf_t b;
    int *cells, *lines;
    size_t nlines, cap;
} s_render_t;

static void s_map(s_render_t *r, int cell, int line)
{
    if (r->nlines == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->cells = cb_xrealloc(r->cells, r->cap * sizeof *r->cells);
        r->lines = cb_xrealloc(r->lines, r->cap * sizeof *r->lines);
    }
    r->cells[r->nlines] = cell;
    r->lines[r->nlines] = line;
    r->nlines++;
}

/* Glue: text of whole lines (each ending in \n). */
static void s_glue(s_render_t *r, const char *text)
{
    for (const char *p = text; *p; p++)
        if (*p == '\n')
            s_map(r, 0, 0);
    cb_buf_printf(&r->b, "%s", text);
}

/* One item: its line directive, then its text indented as in its cell. */
static void s_chunk(s_render_t *r, const cs_item_t *it, const char *prefix)
{
    if (cs_is_c(r->lang)) {
        cb_buf_printf(&r->b, "#line %d \"cell[%d]\"\n", it->line, it->cell);
        s_map(r, 0, 0);
    } else if (r->lang == CS_GO) {
        cb_buf_printf(&r->b, "//line cell[%d]:%d:1\n", it->cell, it->line);
        s_map(r, 0, 0);
    }
    cb_buf_printf(&r->b, "%s", it->indent);
    if (prefix)
        cb_buf_printf(&r->b, "%s", prefix);
    cb_buf_printf(&r->b, "%s", it->text);
    cb_buf_printf(&r->b, "%s", "\n");
    int line = it->line;
    s_map(r, it->cell, line);
    for (const char *p = it->text; *p; p++)
        if (*p == '\n')
            s_map(r, it->cell, ++line);
}

/* Go: after a statement a, b := ..., a line _ = a; _ = b, so a name the cell does not use
 * again is no "declared but not used" error (it could not be used by a later cell anyway). */
static void s_go_mark_used(s_render_t *r, const cs_item_t *it)
{
    cs_lexer_t lx;
    cs_lexer_init(&lx, CS_GO, it->text, strlen(it->text));
    cs_tok_t t;
    size_t names = 0;
    cb_buf_t line = {0};
    while (cs_lex(&lx, &t)) {
        if (t.type != CS_T_IDENT || cs_tok_is_any(&lx, &t, cs_go_keywords))
            break;
        if (!cs_tok_is(&lx, &t, "_")) {
            cb_buf_printf(&line, "%s", "_ = ");
            cb_buf_append(&line, it->text + t.start, t.end - t.start);
            cb_buf_printf(&line, "%s", "; ");
        }
        names++;
        if (!cs_lex(&lx, &t))
            break;
        if (cs_punct_is(&lx, &t, ":=")) {
            if (line.len) {
                cb_buf_printf(&line, "%s", "\n");
                s_glue(r, line.data);
            }
            break;
        }
        if (!cs_punct_is(&lx, &t, ","))
            break;
    }
    free(line.data);
}

/* Go: the names used as `name.` in text, outside strings and comments, not after a dot. */
static void s_go_used(const char *text, size_t len, s_keyset_t *used, cb_buf_t *names)
{
    cs_lexer_t lx;
    cs_lexer_init(&lx, CS_GO, text, len);
    cs_tok_t t, prev = {0};
    while (cs_lex(&lx, &t)) {
        if (t.type == CS_T_IDENT && !(prev.type == CS_T_PUNCT && cs_tok_is(&lx, &prev, "."))) {
            cs_tok_t p = cs_peek(&lx);
            if (cs_punct_is(&lx, &p, ".")) {
                /* the names in one buffer of NUL-separated strings, indexed below */
                cb_buf_append(names, text + t.start, t.end - t.start);
                cb_buf_append(names, "", 1);
            }
        }
        prev = t;
    }
    /* the buffer does not move any more: index it */
    for (size_t off = 0; off < names->len; off += strlen(names->data + off) + 1)
        s_keyset_add(used, names->data + off, 0);
}

/* The name a Go import key binds ("import:fmt" -> "fmt"); NULL for _ and . imports. */
static const char *s_go_import_name(const cs_item_t *it)
{
    const char *name = it->key + strlen("import:");
    if (strchr(name, '"'))
        return NULL; /* _ "x" or . "x": always emitted */
    return name;
}

cs_source_t *cs_render(const cs_program_t *self, const cs_cell_t *cell)
{
    size_t n;
    const cs_item_t **kept = s_merge(self, cell, &n);
    s_render_t r = {.lang = self->lang};
    s_render_t body = {.lang = self->lang}; /* Go: the code after the imports */
    s_render_t *main_r = self->lang == CS_GO ? &body : &r;

    if (cs_is_c(self->lang)) {
        /* stdout line-buffered, and stdin too: glibc flushes stdout before it reads a
         * line-buffered stdin, so a prompt shows before the program waits for its answer */
        s_glue(&r, "#include <stdio.h>\n"
                   "static void cellblock_line_buffered_(void) __attribute__((constructor));\n"
                   "static void cellblock_line_buffered_(void) {\n"
                   "    setvbuf(stdout, NULL, _IOLBF, 0);\n"
                   "    setvbuf(stdin, NULL, _IOLBF, 0);\n"
                   "}\n");
    } else if (self->lang == CS_RUST) {
        s_glue(&r, "#![allow(unused)]\n");
    } else {
        s_glue(&r, "package main\n");
    }
    /* heads (Go: after the body is known) */
    if (self->lang != CS_GO)
        for (size_t i = 0; i < n; i++)
            if (kept[i]->kind == CS_HEAD)
                s_chunk(&r, kept[i], NULL);
    /* definitions, in the merged order (a redefinition sits where the one it replaced was);
     * a cell with its own main comes after them as written */
    for (size_t i = 0; i < n; i++) {
        bool own = kept[i] >= cell->items && kept[i] < cell->items + cell->n;
        if (kept[i]->kind == CS_DEF && !(own && cell->has_main))
            s_chunk(main_r, kept[i], NULL);
    }
    if (cell->has_main) {
        for (size_t i = 0; i < cell->n; i++)
            if (cell->items[i].kind != CS_HEAD && cell->items[i].kind != CS_DROP)
                s_chunk(main_r, &cell->items[i], NULL);
    } else {
        s_glue(main_r, self->lang == CS_C      ? "int main(void) {\n"
                       : self->lang == CS_CPP  ? "int main() {\n"
                       : self->lang == CS_RUST ? "fn main() {\n"
                                               : "func main() {\n");
        for (size_t i = 0; i < cell->n; i++) {
            if (cell->items[i].kind != CS_STMT)
                continue;
            s_chunk(main_r, &cell->items[i], NULL);
            if (self->lang == CS_GO)
                s_go_mark_used(main_r, &cell->items[i]);
        }
        s_glue(main_r, cs_is_c(self->lang) ? ";\nreturn 0;\n}\n" : "\n}\n");
    }
    if (self->lang == CS_GO) {
        s_keyset_t used;
        cb_buf_t names = {0};
        s_keyset_init(&used, body.b.len / 2 + 1);
        s_go_used(body.b.data ? body.b.data : "", body.b.len, &used, &names);
        for (size_t i = 0; i < n; i++) {
            if (kept[i]->kind != CS_HEAD)
                continue;
            const char *name = s_go_import_name(kept[i]);
            if (!name || s_keyset_find(&used, name) != SIZE_MAX)
                s_chunk(&r, kept[i], "import ");
        }
        s_keyset_free(&used);
        free(names.data);
        cb_buf_append(&r.b, body.b.data ? body.b.data : "", body.b.len);
        for (size_t i = 0; i < body.nlines; i++)
            s_map(&r, body.cells[i], body.lines[i]);
        free(body.b.data);
        free(body.cells);
        free(body.lines);
    }
    free(kept);
    cs_source_t *src = cb_xcalloc(1, sizeof *src);
    src->len = r.b.len;
    src->text = cb_buf_take(&r.b);
    src->cells = r.cells;
    src->lines = r.lines;
    src->nlines = r.nlines;
    return src;
}

void cs_source_destroy(cs_source_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cs_source_t *self = *self_p;
    free(self->text);
    free(self->cells);
    free(self->lines);
    free(self);
    *self_p = NULL;
}

const char *cs_source_text(const cs_source_t *self) { return self->text; }

size_t cs_source_len(const cs_source_t *self) { return self->len; }

void cs_source_origin(const cs_source_t *self, int gen_line, int *cell, int *line)
{
    if (gen_line >= 1 && (size_t)gen_line <= self->nlines && self->cells[gen_line - 1] != 0) {
        *cell = self->cells[gen_line - 1];
        *line = self->lines[gen_line - 1];
    } else {
        *cell = 0;
        *line = gen_line;
    }
}

/* ---- compiler output ---------------------------------------------------------------------- */

/* Parse a decimal number of at most 9 digits at *p; -1 when there is none. */
static long s_number(const char **p, const char *end)
{
    long v = 0;
    int digits = 0;
    while (*p < end && cs_digit(**p) && digits < 9) {
        v = v * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    return digits ? v : -1;
}

char *cs_map_rust_output(const cs_source_t *src, const char *out, size_t len)
{
    cb_buf_t b = {0};
    const char *end = out + len;
    const char *p = out;
    static const char file[] = CS_RUST_FILE ":";
    size_t flen = sizeof file - 1;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        /* the gutter: blanks, a number, a blank, '|' */
        const char *q = p;
        while (q < le && *q == ' ')
            q++;
        const char *num = q;
        long gen = s_number(&q, le);
        if (gen > 0 && q < le && *q == ' ' && q + 1 < le && q[1] == '|' &&
            (q + 2 == le || q[2] == ' ')) {
            int cell, line;
            cs_source_origin(src, (int)gen, &cell, &line);
            int width = (int)(q - p);
            cb_buf_printf(&b, "%*d", width, line);
            (void)num;
            p = q;
        }
        /* main.rs:L:C anywhere on the line */
        while (p < le) {
            const char *hit = NULL;
            for (const char *s = p; s + flen <= le; s++)
                if (memcmp(s, file, flen) == 0) {
                    hit = s;
                    break;
                }
            if (!hit) {
                cb_buf_append(&b, p, (size_t)(le - p));
                p = le;
                break;
            }
            cb_buf_append(&b, p, (size_t)(hit - p));
            const char *np = hit + flen;
            long gen2 = s_number(&np, le);
            int cell = 0, line = 0;
            if (gen2 > 0)
                cs_source_origin(src, (int)gen2, &cell, &line);
            if (gen2 > 0 && cell > 0) {
                cb_buf_printf(&b, "cell[%d]:%d", cell, line);
                p = np;
            } else {
                cb_buf_append(&b, hit, flen);
                p = hit + flen;
            }
        }
        if (eol) {
            cb_buf_append(&b, "\n", 1);
            p = eol + 1;
        }
    }
    return cb_buf_take(&b);
}

char *cs_first_error(cs_lang_t lang, const char *out, size_t len)
{
    const char *end = out + len, *first = NULL, *first_end = NULL;
    for (const char *p = out; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        size_t n = (size_t)(le - p);
        bool blank = true;
        for (const char *q = p; q < le; q++)
            if (*q != ' ' && *q != '\t' && *q != '\r')
                blank = false;
        if (!blank) {
            if (!first) {
                first = p;
                first_end = le;
            }
            bool hit = false;
            if (cs_is_c(lang))
                hit = memmem(p, n, ": error: ", 9) || memmem(p, n, ": fatal error: ", 15) ||
                      memmem(p, n, "undefined reference to", 22); /* the linker's, first */
            else if (lang == CS_RUST)
                hit = n >= 5 && memcmp(p, "error", 5) == 0;
            else
                hit = *p != '#';
            if (hit)
                return cs_copy(p, n);
        }
        p = eol ? eol + 1 : end;
    }
    return first ? cs_copy(first, (size_t)(first_end - first)) : cb_xstrdup("");
}

const char *cs_is_complete(cs_lang_t lang, const char *code, size_t len)
{
    cs_lexer_t lx;
    cs_lexer_init(&lx, lang, code ? code : "", code ? len : 0);
    long depth = 0;
    cs_tok_t t;
    while (cs_lex(&lx, &t)) {
        if (cs_tok_is_open(&lx, &t))
            depth++;
        else if (cs_tok_is_close(&lx, &t))
            depth--;
    }
    return depth > 0 || lx.open ? "incomplete" : "complete";
}
