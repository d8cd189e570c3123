/* kernels/kernel/cellsplit.c: cells of C, C++, Rust and Go cut into items, kept, and rendered
 * into one program (the rules are in cellsplit.h).
 *
 * How: one tokenizer for the four languages (s_lex) that skips blanks and comments and returns
 * identifiers, numbers, literals, punctuation and (C/C++) whole preprocessor lines, each with
 * whether a newline came before it (Go's semicolons). A scanner per language family walks the
 * tokens of a cell with a bracket depth and cuts items at their ends (C: ; or a closing } that
 * ends a body; Rust: ; or a closing }; Go: ; or a newline where Go would insert one); then each
 * item's own tokens are read again to classify it and find its key. Nothing here looks back
 * more than a token ahead, so every input takes linear time, and every step of the tokenizer
 * consumes at least one byte, so nothing loops.
 */
#include "cellsplit.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb/alloc.h"

/* ---- growing buffers ---------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
} s_buf_t;

static void s_buf_add(s_buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = cb_xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void s_buf_str(s_buf_t *b, const char *s) { s_buf_add(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void s_buf_fmt(s_buf_t *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        s_buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static char *s_buf_take(s_buf_t *b)
{
    char *s = b->s ? b->s : cb_xstrdup("");
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

/* ---- the tokenizer ------------------------------------------------------------------------ */

typedef enum { T_EOF, T_IDENT, T_NUM, T_STR, T_PUNCT, T_PP } s_tok_type_t;

typedef struct {
    s_tok_type_t type;
    size_t start, end; /* byte offsets in the lexer's text */
    bool nl_before;    /* a newline (or a comment holding one) came before it */
} s_tok_t;

typedef struct {
    cs_lang_t lang;
    const char *s;
    size_t len, pos;
    bool line_start; /* only blanks since the last newline (C: # starts a directive) */
    bool open;       /* a block comment or a string ran off the end */
} s_lexer_t;

static void s_lexer_init(s_lexer_t *lx, cs_lang_t lang, const char *s, size_t len)
{
    *lx = (s_lexer_t){.lang = lang, .s = s, .len = len, .line_start = true};
}

static bool s_is_c(cs_lang_t lang) { return lang == CS_C || lang == CS_CPP; }

static bool s_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || c >= 0x80;
}

static bool s_ident_char(unsigned char c) { return s_ident_start(c) || (c >= '0' && c <= '9'); }

static bool s_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Blanks and comments; sets *nl when a newline was among them. */
static void s_skip_space(s_lexer_t *lx, bool *nl)
{
    const char *s = lx->s;
    while (lx->pos < lx->len) {
        char c = s[lx->pos];
        if (c == '\n') {
            *nl = true;
            lx->line_start = true;
            lx->pos++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            lx->pos++;
        } else if (c == '\\' && s_is_c(lx->lang) && lx->pos + 1 < lx->len &&
                   s[lx->pos + 1] == '\n') {
            lx->pos += 2; /* a line continuation outside a directive */
        } else if (c == '/' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '/') {
            while (lx->pos < lx->len && s[lx->pos] != '\n')
                lx->pos++;
        } else if (c == '/' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '*') {
            size_t depth = 0;
            bool nests = lx->lang == CS_RUST;
            while (lx->pos < lx->len) {
                if (s[lx->pos] == '/' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '*' &&
                    (nests || depth == 0)) {
                    depth++;
                    lx->pos += 2;
                } else if (s[lx->pos] == '*' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '/') {
                    lx->pos += 2;
                    if (--depth == 0)
                        break;
                } else {
                    if (s[lx->pos] == '\n')
                        *nl = true;
                    lx->pos++;
                }
            }
            if (depth > 0)
                lx->open = true;
        } else {
            break;
        }
    }
}

/* A quoted literal from lx->pos (at the opening quote) to its closing quote. Escapes with \;
 * stops at a newline when the language's literal cannot hold one. */
static void s_skip_quoted(s_lexer_t *lx, char quote, bool multiline)
{
    const char *s = lx->s;
    lx->pos++;
    while (lx->pos < lx->len) {
        char c = s[lx->pos];
        if (c == '\\' && lx->pos + 1 < lx->len) {
            lx->pos += 2;
        } else if (c == quote) {
            lx->pos++;
            return;
        } else if (c == '\n' && !multiline) {
            return; /* unterminated on its line: the compiler says so */
        } else {
            lx->pos++;
        }
    }
    if (multiline)
        lx->open = true;
}

/* C++ raw string: lx->pos at the quote of R"delim( ... )delim". */
static void s_skip_cpp_raw(s_lexer_t *lx)
{
    const char *s = lx->s;
    size_t d0 = lx->pos + 1, d = d0;
    while (d < lx->len && d - d0 <= 16 && s[d] != '(' && s[d] != '"' && s[d] != '\n')
        d++;
    if (d >= lx->len || s[d] != '(' || d - d0 > 16) {
        s_skip_quoted(lx, '"', false); /* not a valid raw string: read it as an ordinary one */
        return;
    }
    size_t dlen = d - d0;
    for (size_t p = d + 1; p < lx->len; p++) {
        if (s[p] == ')' && p + 1 + dlen < lx->len && memcmp(s + p + 1, s + d0, dlen) == 0 &&
            s[p + 1 + dlen] == '"') {
            lx->pos = p + 2 + dlen;
            return;
        }
    }
    lx->pos = lx->len;
    lx->open = true;
}

/* Rust raw string: lx->pos at the first # or the quote of r#"..."#. */
static void s_skip_rust_raw(s_lexer_t *lx)
{
    const char *s = lx->s;
    size_t hashes = 0;
    while (lx->pos < lx->len && s[lx->pos] == '#') {
        hashes++;
        lx->pos++;
    }
    if (lx->pos >= lx->len || s[lx->pos] != '"')
        return; /* r#ident, or junk: the identifier ended before the #s */
    for (size_t p = lx->pos + 1; p < lx->len; p++) {
        if (s[p] != '"')
            continue;
        size_t h = 0;
        while (h < hashes && p + 1 + h < lx->len && s[p + 1 + h] == '#')
            h++;
        if (h == hashes) {
            lx->pos = p + 1 + hashes;
            return;
        }
    }
    lx->pos = lx->len;
    lx->open = true;
}

/* The length of the UTF-8 sequence starting with byte c (1 for anything invalid). */
static size_t s_utf8_len(unsigned char c)
{
    if (c >= 0xf0 && c < 0xf8)
        return 4;
    if (c >= 0xe0)
        return c < 0xf0 ? 3 : 1;
    if (c >= 0xc0)
        return 2;
    return 1;
}

static const char *const s_punct3[] = {"<<=", ">>=", "...", "->*", "&^=", "<=>", "..="};
static const char *const s_punct2[] = {
    "::", "->", "<<", ">>", "&&", "||", "++", "--", "==", "!=", "<=", ">=", "+=",
    "-=", "*=", "/=", "%=", "&=", "|=", "^=", ":=", "=>", "..", "<-", "&^", "##"};

static bool s_lex(s_lexer_t *lx, s_tok_t *t)
{
    bool nl = false;
    s_skip_space(lx, &nl);
    const char *s = lx->s;
    *t = (s_tok_t){.type = T_EOF, .start = lx->pos, .end = lx->pos, .nl_before = nl};
    if (lx->pos >= lx->len)
        return false;
    unsigned char c = (unsigned char)s[lx->pos];
    size_t start = lx->pos;
    bool at_line_start = lx->line_start;
    lx->line_start = false;

    if (c == '#' && at_line_start && s_is_c(lx->lang)) {
        while (lx->pos < lx->len && s[lx->pos] != '\n') {
            if (s[lx->pos] == '\\' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '\n')
                lx->pos += 2;
            else if (s[lx->pos] == '\\' && lx->pos + 2 < lx->len && s[lx->pos + 1] == '\r' &&
                     s[lx->pos + 2] == '\n')
                lx->pos += 3;
            else
                lx->pos++;
        }
        t->type = T_PP;
    } else if (s_ident_start(c)) {
        while (lx->pos < lx->len && s_ident_char((unsigned char)s[lx->pos]))
            lx->pos++;
        size_t n = lx->pos - start;
        const char *w = s + start;
        char next = lx->pos < lx->len ? s[lx->pos] : '\0';
        t->type = T_IDENT;
        if (s_is_c(lx->lang)) {
            bool prefix = (n == 1 && (*w == 'L' || *w == 'u' || *w == 'U')) ||
                          (n == 2 && memcmp(w, "u8", 2) == 0);
            bool raw_prefix = (n == 1 && *w == 'R') ||
                              (n == 2 && w[1] == 'R' && strchr("LuU", w[0])) ||
                              (n == 3 && memcmp(w, "u8R", 3) == 0);
            if (next == '"' && raw_prefix && lx->lang == CS_CPP) {
                s_skip_cpp_raw(lx);
                t->type = T_STR;
            } else if ((next == '"' || next == '\'') && prefix) {
                s_skip_quoted(lx, next, false);
                t->type = T_STR;
            }
        } else if (lx->lang == CS_RUST) {
            bool raw = (n == 1 && *w == 'r') || (n == 2 && memcmp(w, "br", 2) == 0);
            if (raw && (next == '"' || next == '#')) {
                size_t before = lx->pos;
                s_skip_rust_raw(lx);
                if (lx->pos != before)
                    t->type = T_STR;
            } else if (n == 1 && *w == 'b' && (next == '"' || next == '\'')) {
                s_skip_quoted(lx, next, next == '"');
                t->type = T_STR;
            }
        }
    } else if (s_digit(c) || (c == '.' && lx->pos + 1 < lx->len && s_digit(s[lx->pos + 1]))) {
        while (lx->pos < lx->len) {
            unsigned char d = (unsigned char)s[lx->pos];
            if (s_ident_char(d) || d == '.') {
                /* 1..2 in Rust is a range, not a number */
                if (d == '.' && lx->lang == CS_RUST && lx->pos + 1 < lx->len &&
                    s[lx->pos + 1] == '.')
                    break;
                lx->pos++;
            } else if ((d == '+' || d == '-') && strchr("eEpP", s[lx->pos - 1])) {
                lx->pos++;
            } else if (d == '\'' && lx->lang == CS_CPP && lx->pos + 1 < lx->len &&
                       s_ident_char((unsigned char)s[lx->pos + 1])) {
                lx->pos++; /* 1'000'000 */
            } else {
                break;
            }
        }
        t->type = T_NUM;
    } else if (c == '"') {
        s_skip_quoted(lx, '"', lx->lang == CS_RUST);
        t->type = T_STR;
    } else if (c == '`' && lx->lang == CS_GO) {
        const char *q = memchr(s + lx->pos + 1, '`', lx->len - lx->pos - 1);
        if (q) {
            lx->pos = (size_t)(q - s) + 1;
        } else {
            lx->pos = lx->len;
            lx->open = true;
        }
        t->type = T_STR;
    } else if (c == '\'' && lx->lang == CS_RUST) {
        /* a char literal ('x', '\n', 'é') or a lifetime ('a, 'static) */
        size_t p = lx->pos + 1;
        if (p < lx->len && s[p] == '\\') {
            s_skip_quoted(lx, '\'', false);
            t->type = T_STR;
        } else if (p < lx->len) {
            size_t n = s_utf8_len((unsigned char)s[p]);
            if (p + n < lx->len && s[p + n] == '\'') {
                lx->pos = p + n + 1;
                t->type = T_STR;
            } else {
                lx->pos = p;
                while (lx->pos < lx->len && s_ident_char((unsigned char)s[lx->pos]))
                    lx->pos++;
                t->type = T_IDENT;
            }
        } else {
            lx->pos = p;
            t->type = T_PUNCT;
        }
    } else if (c == '\'') {
        s_skip_quoted(lx, '\'', false);
        t->type = T_STR;
    } else {
        t->type = T_PUNCT;
        size_t left = lx->len - lx->pos;
        size_t n = 1;
        for (size_t i = 0; n == 1 && left >= 3 && i < sizeof s_punct3 / sizeof *s_punct3; i++)
            if (memcmp(s + lx->pos, s_punct3[i], 3) == 0)
                n = 3;
        for (size_t i = 0; n == 1 && left >= 2 && i < sizeof s_punct2 / sizeof *s_punct2; i++)
            if (memcmp(s + lx->pos, s_punct2[i], 2) == 0)
                n = 2;
        lx->pos += n;
    }
    if (lx->pos == start)
        lx->pos++; /* never stand still */
    t->end = lx->pos;
    return true;
}

static s_tok_t s_peek(const s_lexer_t *lx)
{
    s_lexer_t copy = *lx;
    s_tok_t t;
    s_lex(&copy, &t);
    return t;
}

static bool s_is(const s_lexer_t *lx, const s_tok_t *t, const char *word)
{
    size_t n = strlen(word);
    return t->type != T_EOF && t->end - t->start == n && memcmp(lx->s + t->start, word, n) == 0;
}

static bool s_is_any(const s_lexer_t *lx, const s_tok_t *t, const char *const *words)
{
    for (; *words; words++)
        if (s_is(lx, t, *words))
            return true;
    return false;
}

static bool s_is_open(const s_lexer_t *lx, const s_tok_t *t)
{
    return t->type == T_PUNCT && t->end - t->start == 1 && strchr("([{", lx->s[t->start]) &&
           lx->s[t->start] != '\0';
}

static bool s_is_close(const s_lexer_t *lx, const s_tok_t *t)
{
    return t->type == T_PUNCT && t->end - t->start == 1 && strchr(")]}", lx->s[t->start]) &&
           lx->s[t->start] != '\0';
}

/* With the lexer before a keyword: is the token after the keyword a string (extern "C")? */
static bool s_second_is_string(const s_lexer_t *lx)
{
    s_lexer_t l2 = *lx;
    s_tok_t t;
    s_lex(&l2, &t);
    s_lex(&l2, &t);
    return t.type == T_STR;
}

static bool s_next_is(const s_lexer_t *lx, const char *word)
{
    s_tok_t t = s_peek(lx);
    return s_is(lx, &t, word);
}

/* The tokens of text joined by single spaces: a key that ignores layout and comments. */
static char *s_norm(cs_lang_t lang, const char *text, size_t len)
{
    s_lexer_t lx;
    s_lexer_init(&lx, lang, text, len);
    s_buf_t b = {0};
    s_tok_t t;
    while (s_lex(&lx, &t)) {
        if (b.len)
            s_buf_add(&b, " ", 1);
        s_buf_add(&b, text + t.start, t.end - t.start);
    }
    return s_buf_take(&b);
}

/* ---- cells -------------------------------------------------------------------------------- */

struct cs_cell {
    cs_lang_t lang;
    int cell_no;
    cs_item_t *items;
    size_t n, cap;
    bool has_main;
};

typedef struct {
    cs_lang_t lang;
    const char *code;
    size_t len;
    cs_cell_t *cell;
    /* line counting, forward only: lines[...] up to line_pos */
    size_t line_pos;
    int line_no;
} s_split_t;

static void s_item_free(cs_item_t *it)
{
    free(it->key);
    free(it->text);
    free(it->indent);
}

/* The line of offset off (offsets asked for never go backwards). */
static int s_line_of(s_split_t *sp, size_t off)
{
    for (; sp->line_pos < off && sp->line_pos < sp->len; sp->line_pos++)
        if (sp->code[sp->line_pos] == '\n')
            sp->line_no++;
    return sp->line_no;
}

static void s_add(s_split_t *sp, cs_kind_t kind, char *key, size_t start, size_t end)
{
    cs_cell_t *c = sp->cell;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = cb_xrealloc(c->items, c->cap * sizeof *c->items);
    }
    size_t ls = start;
    while (ls > 0 && sp->code[ls - 1] != '\n')
        ls--;
    char *indent = cb_xmalloc(start - ls + 1);
    for (size_t i = ls; i < start; i++)
        indent[i - ls] = sp->code[i] == '\t' ? '\t' : ' ';
    indent[start - ls] = '\0';
    c->items[c->n++] = (cs_item_t){
        .kind = kind,
        .key = key,
        .text = cb_xstrndup(sp->code + start, end - start),
        .indent = indent,
        .line = s_line_of(sp, start),
        .cell = c->cell_no,
    };
    if (kind == CS_MAIN)
        c->has_main = true;
}

static char *s_key(const char *kind, const s_lexer_t *lx, const s_tok_t *name)
{
    s_buf_t b = {0};
    s_buf_str(&b, kind);
    s_buf_add(&b, lx->s + name->start, name->end - name->start);
    return s_buf_take(&b);
}

static char *s_text_key(cs_lang_t lang, const char *text, size_t len)
{
    char *norm = s_norm(lang, text, len);
    s_buf_t b = {0};
    s_buf_str(&b, "text:");
    s_buf_str(&b, norm);
    free(norm);
    return s_buf_take(&b);
}

/* ---- C and C++ ---------------------------------------------------------------------------- */

static const char *const s_c_stmt_words[] = {
    "if",       "for",  "while",     "do",       "switch",   "return", "break",
    "continue", "goto", "try",       "throw",    "delete",   "new",    "case",
    "default",  "else", "co_return", "co_yield", "co_await", "sizeof", NULL};

static const char *const s_c_class_words[] = {"struct", "class", "union", "enum", NULL};

/* What the declaration rule read before its stop token. */
typedef struct {
    int names;          /* how many names */
    bool qualified;     /* the last name had :: in it */
    bool operator_seen; /* stopped by an operator that is not a stop token: a statement */
    s_tok_t last;       /* the last name (its ident chain, without template arguments) */
    s_tok_t stop;       /* the stop token (T_EOF at the end) */
} s_decl_t;

/* Skip balanced brackets from an opening token already read; false when the text ran out. */
static bool s_skip_group(s_lexer_t *lx)
{
    size_t depth = 1;
    s_tok_t t;
    while (s_lex(lx, &t)) {
        if (s_is_open(lx, &t))
            depth++;
        else if (s_is_close(lx, &t) && --depth == 0)
            return true;
    }
    return false;
}

/* After a name, '<' ... '>' with nesting; the lexer is left after it only when it is one. */
static bool s_skip_template_args(s_lexer_t *lx)
{
    s_lexer_t save = *lx;
    s_tok_t t;
    s_lex(lx, &t); /* the '<' */
    long depth = 1;
    while (s_lex(lx, &t)) {
        if (t.type == T_PUNCT) {
            char c = lx->s[t.start];
            size_t n = t.end - t.start;
            if (n == 1 && c == '<')
                depth++;
            else if (n == 1 && c == '>')
                depth--;
            else if (n == 2 && c == '>' && lx->s[t.start + 1] == '>')
                depth -= 2;
            else if (n == 1 && (c == '(' || c == '['))
                s_skip_group(lx);
            else if (n == 1 && (c == ';' || c == '{' || c == '}' || c == ')' || c == ']'))
                break;
            if (depth <= 0)
                return depth == 0;
        }
    }
    *lx = save;
    return false;
}

static bool s_punct_is(const s_lexer_t *lx, const s_tok_t *t, const char *p)
{
    return t->type == T_PUNCT && s_is(lx, t, p);
}

/* The declaration rule (cellsplit.h), from the lexer's position. */
static s_decl_t s_decl_rule(s_lexer_t *lx)
{
    s_decl_t d = {0};
    s_tok_t t;
    static const char *const stops[] = {"=", "(", "[", "{", ";", ",", ":", NULL};
    for (;;) {
        if (!s_lex(lx, &t)) {
            d.stop = t;
            return d;
        }
        if (t.type == T_PUNCT && s_is_any(lx, &t, stops)) {
            /* [[attribute]] at the start is not a stop */
            if (d.names == 0 && s_punct_is(lx, &t, "[")) {
                s_tok_t p = s_peek(lx);
                if (s_punct_is(lx, &p, "[")) {
                    s_skip_group(lx);
                    continue;
                }
            }
            d.stop = t;
            return d;
        }
        if (t.type == T_PUNCT && (s_is(lx, &t, "*") || s_is(lx, &t, "&") || s_is(lx, &t, "&&")))
            continue;
        if (t.type == T_IDENT && (s_is(lx, &t, "__attribute__") || s_is(lx, &t, "alignas") ||
                                  s_is(lx, &t, "__declspec"))) {
            s_tok_t p = s_peek(lx);
            if (s_punct_is(lx, &p, "(")) {
                s_lex(lx, &p);
                s_skip_group(lx);
            }
            continue;
        }
        if (t.type == T_IDENT || s_punct_is(lx, &t, "::")) {
            /* one name: [::] ident (:: [~] ident)* [<...>], or operator <symbol> */
            s_tok_t name = t;
            bool qualified = t.type == T_PUNCT;
            if (t.type == T_PUNCT) {
                s_tok_t p = s_peek(lx);
                if (p.type != T_IDENT)
                    return (s_decl_t){.operator_seen = true};
                s_lex(lx, &p);
                name.end = p.end;
            }
            for (;;) {
                s_tok_t p = s_peek(lx);
                if (!s_punct_is(lx, &p, "::"))
                    break;
                s_lexer_t save = *lx;
                s_lex(lx, &p);
                s_tok_t q;
                s_lex(lx, &q);
                if (s_punct_is(lx, &q, "~"))
                    s_lex(lx, &q);
                if (q.type != T_IDENT) {
                    *lx = save;
                    break;
                }
                name.end = q.end;
                qualified = true;
            }
            /* operator==, operator(), operator new */
            size_t last_word = name.end >= 8 ? name.end - 8 : 0;
            if (name.end - name.start >= 8 && memcmp(lx->s + last_word, "operator", 8) == 0 &&
                (last_word == name.start || lx->s[last_word - 1] == ':')) {
                s_tok_t p;
                s_lex(lx, &p);
                if (s_punct_is(lx, &p, "(") || s_punct_is(lx, &p, "[")) {
                    s_tok_t q;
                    s_lex(lx, &q);
                    p.end = q.end;
                }
                if (p.type != T_EOF)
                    name.end = p.end;
            }
            s_tok_t p = s_peek(lx);
            if (s_punct_is(lx, &p, "<"))
                s_skip_template_args(lx);
            d.names++;
            d.qualified = qualified;
            d.last = name;
            continue;
        }
        d.operator_seen = true;
        d.stop = t;
        return d;
    }
}

/* After the first token of an item: does a } that brings the depth back to 0 end it? */
typedef struct {
    s_tok_t first;
    bool eq, paren, class_kw, brace; /* seen at depth 0 before the first { */
} s_c_item_t;

static bool s_c_ends_at_brace(const s_lexer_t *lx, const s_c_item_t *it)
{
    if (s_punct_is(lx, &it->first, "{") || s_is_any(lx, &it->first, s_c_stmt_words))
        return true;
    if (it->eq)
        return false;
    if (s_is(lx, &it->first, "namespace") || s_is(lx, &it->first, "extern"))
        return true;
    if (it->class_kw && !it->paren)
        return false;
    return it->paren;
}

/* Classify one C/C++ item [start, end) and add it. */
static void s_c_classify(s_split_t *sp, size_t start, size_t end)
{
    const char *text = sp->code + start;
    size_t len = end - start;
    s_lexer_t lx;
    s_lexer_init(&lx, sp->lang, text, len);
    s_tok_t first;
    s_lex(&lx, &first);

    if (first.type == T_PP) {
        const char *p = text + 1;
        while (p < text + len && (*p == ' ' || *p == '\t'))
            p++;
        size_t rest = (size_t)(text + len - p);
        if ((rest >= 7 && memcmp(p, "include", 7) == 0) ||
            (rest >= 6 && memcmp(p, "import", 6) == 0)) {
            s_add(sp, CS_HEAD, s_text_key(sp->lang, text, len), start, end);
            return;
        }
        if (rest >= 6 && memcmp(p, "define", 6) == 0) {
            s_lexer_t dl;
            s_lexer_init(&dl, sp->lang, p + 6, rest - 6);
            s_tok_t name;
            if (s_lex(&dl, &name) && name.type == T_IDENT) {
                s_add(sp, CS_DEF, s_key("define:", &dl, &name), start, end);
                return;
            }
        }
        s_add(sp, CS_DEF, s_text_key(sp->lang, text, len), start, end);
        return;
    }
    if (s_punct_is(&lx, &first, "{") || s_is_any(&lx, &first, s_c_stmt_words)) {
        s_add(sp, CS_STMT, NULL, start, end);
        return;
    }
    /* template<...> before a function or a class */
    s_tok_t head = first;
    if (s_is(&lx, &first, "template")) {
        s_tok_t p = s_peek(&lx);
        if (s_punct_is(&lx, &p, "<"))
            s_skip_template_args(&lx);
        s_lexer_t save = lx;
        if (!s_lex(&lx, &head)) {
            s_add(sp, CS_DEF, s_text_key(sp->lang, text, len), start, end);
            return;
        }
        lx = save;
    } else {
        lx = (s_lexer_t){0};
        s_lexer_init(&lx, sp->lang, text, len);
    }
    s_lexer_t at_head = lx; /* before head */

    if (s_is(&lx, &head, "typedef")) {
        /* the key is the last identifier at depth 0 */
        s_tok_t t, last = {0};
        long depth = 0;
        while (s_lex(&lx, &t)) {
            if (s_is_open(&lx, &t))
                depth++;
            else if (s_is_close(&lx, &t) && depth > 0)
                depth--;
            else if (depth == 0 && t.type == T_IDENT)
                last = t;
        }
        char *key = last.type == T_IDENT && !s_is(&lx, &last, "typedef")
                        ? s_key("type:", &lx, &last)
                        : s_text_key(sp->lang, text, len);
        s_add(sp, CS_DEF, key, start, end);
        return;
    }
    if (s_is(&lx, &head, "using")) {
        s_tok_t t;
        s_lex(&lx, &t); /* using */
        s_tok_t name, eq;
        if (s_lex(&lx, &name) && name.type == T_IDENT && s_lex(&lx, &eq) &&
            s_punct_is(&lx, &eq, "="))
            s_add(sp, CS_DEF, s_key("type:", &lx, &name), start, end);
        else
            s_add(sp, CS_DEF, s_text_key(sp->lang, text, len), start, end);
        return;
    }
    if (s_is(&lx, &head, "namespace") || s_is(&lx, &head, "static_assert") ||
        (s_is(&lx, &head, "extern") && s_second_is_string(&lx))) {
        s_add(sp, CS_DEF, s_text_key(sp->lang, text, len), start, end);
        return;
    }
    /* struct S {...}; class C : B {...}; enum class E {...}; — a type definition */
    if (s_is_any(&lx, &head, s_c_class_words)) {
        s_lexer_t l2 = lx;
        s_tok_t t, name = {0};
        bool brace = false;
        s_lex(&l2, &t); /* the keyword */
        while (s_lex(&l2, &t)) {
            if (s_punct_is(&l2, &t, "{")) {
                brace = true;
                break;
            }
            if (s_punct_is(&l2, &t, "(") || s_punct_is(&l2, &t, ";") || s_punct_is(&l2, &t, "=") ||
                s_punct_is(&l2, &t, ":") || s_punct_is(&l2, &t, "*"))
                break;
            if (t.type == T_IDENT && !s_is(&l2, &t, "class") && !s_is(&l2, &t, "struct") &&
                !s_is(&l2, &t, "final") && !s_is(&l2, &t, "alignas"))
                name = t;
        }
        if (brace || s_punct_is(&l2, &t, ":")) {
            /* a definition (the : of a base list or an enum's type comes before its {) */
            char *key =
                name.type == T_IDENT ? s_key("type:", &l2, &name) : s_text_key(sp->lang, text, len);
            s_add(sp, CS_DEF, key, start, end);
            return;
        }
    }
    /* the declaration rule: a function with a body, a prototype, a global */
    lx = at_head;
    s_decl_t d = s_decl_rule(&lx);
    size_t e = len;
    while (e > 0 && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r' ||
                     text[e - 1] == '\n'))
        e--;
    bool body = e > 0 && text[e - 1] == '}';
    if (d.operator_seen || d.names == 0 || (d.names < 2 && !d.qualified)) {
        s_add(sp, CS_STMT, NULL, start, end);
        return;
    }
    bool paren = s_punct_is(&lx, &d.stop, "(");
    if (paren && body) {
        if (s_is(&lx, &d.last, "main")) {
            s_add(sp, CS_MAIN, NULL, start, end);
            return;
        }
        s_add(sp, CS_DEF, s_key("fn:", &lx, &d.last), start, end);
        return;
    }
    if (d.names < 2) {
        s_add(sp, CS_STMT, NULL, start, end); /* S::x = 3; */
        return;
    }
    s_add(sp, CS_DEF, s_key(paren ? "proto:" : "var:", &lx, &d.last), start, end);
}

static void s_split_c(s_split_t *sp)
{
    s_lexer_t lx;
    s_lexer_init(&lx, sp->lang, sp->code, sp->len);
    s_tok_t t;
    while (s_lex(&lx, &t)) {
        if (t.type == T_PP) {
            s_c_classify(sp, t.start, t.end);
            continue;
        }
        if (s_punct_is(&lx, &t, ";"))
            continue; /* an empty item */
        s_c_item_t it = {.first = t};
        size_t start = t.start, end = t.end;
        long depth = 0;
        for (;;) {
            end = t.end;
            if (depth == 0 && !it.brace) {
                if (s_punct_is(&lx, &t, "="))
                    it.eq = true;
                else if (s_punct_is(&lx, &t, "("))
                    it.paren = true;
                else if (s_is_any(&lx, &t, s_c_class_words))
                    it.class_kw = true;
            }
            if (s_is_open(&lx, &t)) {
                if (depth == 0 && lx.s[t.start] == '{')
                    it.brace = true;
                depth++;
            } else if (s_is_close(&lx, &t)) {
                if (depth == 0)
                    break; /* a stray closer ends the item */
                depth--;
                if (depth == 0 && lx.s[t.start] == '}') {
                    s_tok_t p = s_peek(&lx);
                    if (s_punct_is(&lx, &p, ";")) {
                        s_lex(&lx, &t);
                        end = t.end;
                        break;
                    }
                    bool goes_on = s_is(&lx, &p, "else") || s_is(&lx, &p, "catch") ||
                                   (s_is(&lx, &p, "while") && s_is(&lx, &it.first, "do"));
                    if (!goes_on && s_c_ends_at_brace(&lx, &it))
                        break;
                }
            } else if (depth == 0 && s_punct_is(&lx, &t, ";")) {
                break;
            }
            if (!s_lex(&lx, &t))
                break;
        }
        s_c_classify(sp, start, end);
    }
}

/* ---- Rust --------------------------------------------------------------------------------- */

static const char *const s_rust_item_words[] = {"use",   "fn",     "struct",      "enum",   "impl",
                                                "trait", "mod",    "const",       "static", "type",
                                                "union", "extern", "macro_rules", NULL};

/* From the item's first token: skip attributes and modifiers; *kw is the item's keyword token
 * (or whatever came instead). lx is left after kw. */
static void s_rust_head(s_lexer_t *lx, s_tok_t first, s_tok_t *kw)
{
    s_tok_t t = first;
    for (;;) {
        if (s_punct_is(lx, &t, "#")) {
            s_tok_t p = s_peek(lx);
            if (s_punct_is(lx, &p, "[")) {
                s_lex(lx, &p);
                s_skip_group(lx);
                if (!s_lex(lx, &t))
                    break;
                continue;
            }
            break;
        }
        if (s_is(lx, &t, "pub")) {
            s_tok_t p = s_peek(lx);
            if (s_punct_is(lx, &p, "(")) {
                s_lex(lx, &p);
                s_skip_group(lx);
            }
            if (!s_lex(lx, &t))
                break;
            continue;
        }
        if (s_is(lx, &t, "unsafe") || s_is(lx, &t, "async") || s_is(lx, &t, "default")) {
            s_tok_t p = s_peek(lx);
            if (p.type != T_IDENT)
                break;
            s_lex(lx, &t);
            continue;
        }
        if (s_is(lx, &t, "const")) {
            s_tok_t p = s_peek(lx);
            if (s_is(lx, &p, "fn") || s_is(lx, &p, "unsafe") || s_is(lx, &p, "async")) {
                s_lex(lx, &t);
                continue;
            }
            break;
        }
        if (s_is(lx, &t, "extern")) {
            s_lexer_t save = *lx;
            s_tok_t p;
            s_lex(lx, &p);
            if (p.type == T_STR) {
                s_tok_t q = s_peek(lx);
                if (s_is(lx, &q, "fn") || s_is(lx, &q, "unsafe")) {
                    s_lex(lx, &t);
                    continue;
                }
            }
            *lx = save; /* extern crate, extern "C" { ... } */
            break;
        }
        break;
    }
    *kw = t;
}

static void s_rust_classify(s_split_t *sp, size_t start, size_t end, bool inner_attr)
{
    const char *text = sp->code + start;
    size_t len = end - start;
    if (inner_attr) {
        s_add(sp, CS_HEAD, s_text_key(sp->lang, text, len), start, end);
        return;
    }
    s_lexer_t lx;
    s_lexer_init(&lx, sp->lang, text, len);
    s_tok_t first, kw, name;
    s_lex(&lx, &first);
    s_rust_head(&lx, first, &kw);
    if (!s_is_any(&lx, &kw, s_rust_item_words)) {
        s_add(sp, CS_STMT, NULL, start, end);
        return;
    }
    s_lexer_t after_kw = lx;
    bool have_name = s_lex(&lx, &name);
    if (s_is(&lx, &kw, "static") && s_is(&lx, &name, "mut"))
        have_name = s_lex(&lx, &name);
    if (s_is(&lx, &kw, "macro_rules")) {
        s_tok_t bang = name;
        have_name = s_punct_is(&lx, &bang, "!") && s_lex(&lx, &name);
    }
    have_name = have_name && name.type == T_IDENT;
    if (s_is(&lx, &kw, "fn") && have_name && s_is(&lx, &name, "main")) {
        s_add(sp, CS_MAIN, NULL, start, end);
        return;
    }
    char *key = NULL;
    if (s_is(&lx, &kw, "impl")) {
        /* impl<T> Trait for Type: its header up to the { is the key */
        lx = after_kw;
        s_tok_t t;
        size_t hs = kw.start, he = kw.end;
        while (s_lex(&lx, &t) && !s_punct_is(&lx, &t, "{"))
            he = t.end;
        char *norm = s_norm(sp->lang, text + hs, he - hs);
        s_buf_t b = {0};
        s_buf_str(&b, "impl:");
        s_buf_str(&b, norm);
        free(norm);
        key = s_buf_take(&b);
    } else if (have_name &&
               (s_is(&lx, &kw, "fn") || s_is(&lx, &kw, "const") || s_is(&lx, &kw, "static"))) {
        key = s_key("value:", &lx, &name);
    } else if (have_name && s_is(&lx, &kw, "macro_rules")) {
        key = s_key("macro:", &lx, &name);
    } else if (have_name && !s_is(&lx, &kw, "use") && !s_is(&lx, &kw, "extern")) {
        key = s_key("type:", &lx, &name); /* struct, enum, trait, mod, type, union */
    } else {
        key = s_text_key(sp->lang, text, len);
    }
    s_add(sp, CS_DEF, key, start, end);
}

static void s_split_rust(s_split_t *sp)
{
    s_lexer_t lx;
    s_lexer_init(&lx, sp->lang, sp->code, sp->len);
    s_tok_t t;
    while (s_lex(&lx, &t)) {
        if (s_punct_is(&lx, &t, ";"))
            continue;
        size_t start = t.start, end = t.end;
        /* #![...] */
        if (s_punct_is(&lx, &t, "#")) {
            s_lexer_t l2 = lx;
            s_tok_t bang, br;
            if (s_lex(&l2, &bang) && s_punct_is(&l2, &bang, "!") && s_lex(&l2, &br) &&
                s_punct_is(&l2, &br, "[")) {
                lx = l2;
                s_skip_group(&lx);
                s_rust_classify(sp, start, lx.pos, true);
                continue;
            }
        }
        /* an item or a statement: which one decides where it may end */
        s_lexer_t l2 = lx;
        s_tok_t kw;
        s_rust_head(&l2, t, &kw);
        bool item = s_is_any(&l2, &kw, s_rust_item_words);
        bool to_semicolon = item && (s_is(&l2, &kw, "use") || s_is(&l2, &kw, "const") ||
                                     s_is(&l2, &kw, "static") || s_is(&l2, &kw, "type") ||
                                     (s_is(&l2, &kw, "extern") && s_next_is(&l2, "crate")));
        long depth = 0;
        for (;;) {
            end = t.end;
            if (s_is_open(&lx, &t)) {
                depth++;
            } else if (s_is_close(&lx, &t)) {
                if (depth == 0)
                    break;
                depth--;
                if (depth == 0 && lx.s[t.start] == '}' && !to_semicolon) {
                    s_tok_t p = s_peek(&lx);
                    if (s_punct_is(&lx, &p, ";")) {
                        s_lex(&lx, &t); /* S { x: 1 }; ends with its ; */
                        end = t.end;
                        break;
                    }
                    if (item || !s_is(&lx, &p, "else"))
                        break;
                }
            } else if (depth == 0 && s_punct_is(&lx, &t, ";")) {
                break;
            }
            if (!s_lex(&lx, &t))
                break;
        }
        s_rust_classify(sp, start, end, false);
    }
}

/* ---- Go ----------------------------------------------------------------------------------- */

/* Go's keywords but break, continue, fallthrough and return (after which a newline is a ;). */
static const char *const s_go_keywords[] = {
    "func",    "struct", "interface", "map",   "chan", "else",  "if",   "for",
    "switch",  "select", "go",        "defer", "var",  "const", "type", "import",
    "package", "case",   "default",   "range", "goto", NULL};

/* Would Go insert a semicolon after t at a newline? */
static bool s_go_semi_after(const s_lexer_t *lx, const s_tok_t *t)
{
    static const char *const words[] = {"break", "continue", "fallthrough", "return", "++",
                                        "--",    ")",        "]",           "}",      NULL};
    if (t->type == T_IDENT || t->type == T_NUM || t->type == T_STR)
        return t->type != T_IDENT || !s_is_any(lx, t, s_go_keywords) || s_is_any(lx, t, words);
    return s_is_any(lx, t, words);
}

/* One import spec [start, end) of a Go import declaration: name "path" or "path". */
static void s_go_import_spec(s_split_t *sp, size_t start, size_t end)
{
    s_lexer_t lx;
    s_lexer_init(&lx, sp->lang, sp->code + start, end - start);
    s_tok_t a, b;
    if (!s_lex(&lx, &a))
        return;
    s_tok_t path = a, alias = {0};
    if (a.type != T_STR && s_lex(&lx, &b)) {
        alias = a;
        path = b;
    }
    if (path.type != T_STR) {
        s_add(sp, CS_STMT, NULL, start, end); /* the compiler says what is wrong */
        return;
    }
    s_buf_t k = {0};
    s_buf_str(&k, "import:");
    if (alias.type != T_EOF && (s_is(&lx, &alias, "_") || s_is(&lx, &alias, "."))) {
        char *norm = s_norm(sp->lang, sp->code + start, end - start);
        s_buf_str(&k, norm);
        free(norm);
    } else if (alias.type != T_EOF) {
        s_buf_add(&k, lx.s + alias.start, alias.end - alias.start);
    } else {
        /* the package name is the path's last element (its quotes off) */
        const char *p = lx.s + path.start + 1;
        size_t n = path.end - path.start >= 2 ? path.end - path.start - 2 : 0;
        const char *slash = n ? memrchr(p, '/', n) : NULL;
        if (slash) {
            n -= (size_t)(slash + 1 - p);
            p = slash + 1;
        }
        s_buf_add(&k, p, n);
    }
    s_add(sp, CS_HEAD, s_buf_take(&k), start, end);
}

static void s_go_classify(s_split_t *sp, size_t start, size_t end)
{
    const char *text = sp->code + start;
    size_t len = end - start;
    s_lexer_t lx;
    s_lexer_init(&lx, sp->lang, text, len);
    s_tok_t kw, t;
    s_lex(&lx, &kw);
    if (s_is(&lx, &kw, "package")) {
        s_add(sp, CS_DROP, NULL, start, end);
        return;
    }
    if (s_is(&lx, &kw, "import")) {
        s_tok_t p = s_peek(&lx);
        if (!s_punct_is(&lx, &p, "(")) {
            size_t s0 = p.start;
            s_go_import_spec(sp, start + s0, end);
            return;
        }
        s_lex(&lx, &p);
        /* specs: up to ; or a newline, until ) */
        size_t spec_start = 0, spec_end = 0;
        bool in_spec = false;
        while (s_lex(&lx, &t)) {
            bool close = s_punct_is(&lx, &t, ")");
            if (in_spec && (t.nl_before || s_punct_is(&lx, &t, ";") || close)) {
                s_go_import_spec(sp, start + spec_start, start + spec_end);
                in_spec = false;
            }
            if (close)
                break;
            if (s_punct_is(&lx, &t, ";"))
                continue;
            if (!in_spec) {
                in_spec = true;
                spec_start = t.start;
            }
            spec_end = t.end;
        }
        if (in_spec)
            s_go_import_spec(sp, start + spec_start, start + spec_end);
        return;
    }
    char *key = NULL;
    if (s_is(&lx, &kw, "func")) {
        s_tok_t p;
        if (!s_lex(&lx, &p)) {
            s_add(sp, CS_STMT, NULL, start, end);
            return;
        }
        if (s_punct_is(&lx, &p, "(")) {
            /* a method: func (r *T) Name(...) */
            s_tok_t recv = {0};
            long depth = 1;
            while (depth > 0 && s_lex(&lx, &t)) {
                if (s_is_open(&lx, &t))
                    depth++;
                else if (s_is_close(&lx, &t))
                    depth--;
                else if (depth == 1 && t.type == T_IDENT)
                    recv = t;
            }
            s_tok_t name;
            if (recv.type == T_IDENT && s_lex(&lx, &name) && name.type == T_IDENT) {
                s_buf_t b = {0};
                s_buf_str(&b, "method:");
                s_buf_add(&b, lx.s + recv.start, recv.end - recv.start);
                s_buf_add(&b, ".", 1);
                s_buf_add(&b, lx.s + name.start, name.end - name.start);
                key = s_buf_take(&b);
            }
        } else if (p.type == T_IDENT) {
            if (s_is(&lx, &p, "main")) {
                s_add(sp, CS_MAIN, NULL, start, end);
                return;
            }
            if (!s_is(&lx, &p, "init"))
                key = s_key("name:", &lx, &p);
        } else {
            s_add(sp, CS_STMT, NULL, start, end); /* func() { ... }() */
            return;
        }
    } else if (s_is(&lx, &kw, "type") || s_is(&lx, &kw, "var") || s_is(&lx, &kw, "const")) {
        s_tok_t name;
        if (s_lex(&lx, &name) && name.type == T_IDENT)
            key = s_key("name:", &lx, &name);
    } else {
        s_add(sp, CS_STMT, NULL, start, end);
        return;
    }
    if (!key)
        key = s_text_key(sp->lang, text, len);
    s_add(sp, CS_DEF, key, start, end);
}

static void s_split_go(s_split_t *sp)
{
    s_lexer_t lx;
    s_lexer_init(&lx, sp->lang, sp->code, sp->len);
    s_tok_t t;
    while (s_lex(&lx, &t)) {
        if (s_punct_is(&lx, &t, ";"))
            continue;
        size_t start = t.start, end = t.end;
        long depth = 0;
        /* a statement goes on after a ; (for i := 0; i < n; i++): only a newline ends it */
        static const char *const decl_words[] = {"package", "import", "func", "type",
                                                 "var",     "const",  NULL};
        bool decl = s_is_any(&lx, &t, decl_words);
        for (;;) {
            end = t.end;
            if (s_is_open(&lx, &t))
                depth++;
            else if (s_is_close(&lx, &t) && depth > 0)
                depth--;
            else if (depth == 0 && decl && s_punct_is(&lx, &t, ";"))
                break;
            s_tok_t p = s_peek(&lx);
            if (p.type == T_EOF)
                break;
            if (depth == 0 && p.nl_before && s_go_semi_after(&lx, &t))
                break;
            s_lex(&lx, &t);
        }
        s_go_classify(sp, start, end);
    }
}

/* ---- the cell API ------------------------------------------------------------------------- */

int cs_lang_from_name(const char *name, cs_lang_t *lang)
{
    static const struct {
        const char *name;
        cs_lang_t lang;
    } names[] = {{"c", CS_C}, {"cpp", CS_CPP}, {"c++", CS_CPP}, {"rust", CS_RUST}, {"go", CS_GO}};
    for (size_t i = 0; name && i < sizeof names / sizeof *names; i++)
        if (strcmp(name, names[i].name) == 0) {
            *lang = names[i].lang;
            return 0;
        }
    return -1;
}

cs_cell_t *cs_cell_split(cs_lang_t lang, const char *code, size_t len, int cell_no)
{
    cs_cell_t *self = cb_xcalloc(1, sizeof *self);
    self->lang = lang;
    self->cell_no = cell_no;
    s_split_t sp = {
        .lang = lang, .code = code ? code : "", .len = code ? len : 0, .cell = self, .line_no = 1};
    if (s_is_c(lang))
        s_split_c(&sp);
    else if (lang == CS_RUST)
        s_split_rust(&sp);
    else
        s_split_go(&sp);
    return self;
}

void cs_cell_destroy(cs_cell_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cs_cell_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++)
        s_item_free(&self->items[i]);
    free(self->items);
    free(self);
    *self_p = NULL;
}

size_t cs_cell_count(const cs_cell_t *self) { return self->n; }

const cs_item_t *cs_cell_item(const cs_cell_t *self, size_t i)
{
    return i < self->n ? &self->items[i] : NULL;
}

bool cs_cell_has_main(const cs_cell_t *self) { return self->has_main; }

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
        s_item_free(&self->items[i]);
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
            s_item_free(&self->items[i]);
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
    s_buf_t b;
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
    s_buf_str(&r->b, text);
}

/* One item: its line directive, then its text indented as in its cell. */
static void s_chunk(s_render_t *r, const cs_item_t *it, const char *prefix)
{
    if (s_is_c(r->lang)) {
        s_buf_fmt(&r->b, "#line %d \"cell[%d]\"\n", it->line, it->cell);
        s_map(r, 0, 0);
    } else if (r->lang == CS_GO) {
        s_buf_fmt(&r->b, "//line cell[%d]:%d:1\n", it->cell, it->line);
        s_map(r, 0, 0);
    }
    s_buf_str(&r->b, it->indent);
    if (prefix)
        s_buf_str(&r->b, prefix);
    s_buf_str(&r->b, it->text);
    s_buf_str(&r->b, "\n");
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
    s_lexer_t lx;
    s_lexer_init(&lx, CS_GO, it->text, strlen(it->text));
    s_tok_t t;
    size_t names = 0;
    s_buf_t line = {0};
    while (s_lex(&lx, &t)) {
        if (t.type != T_IDENT || s_is_any(&lx, &t, s_go_keywords))
            break;
        if (!s_is(&lx, &t, "_")) {
            s_buf_str(&line, "_ = ");
            s_buf_add(&line, it->text + t.start, t.end - t.start);
            s_buf_str(&line, "; ");
        }
        names++;
        if (!s_lex(&lx, &t))
            break;
        if (s_punct_is(&lx, &t, ":=")) {
            if (line.len) {
                s_buf_str(&line, "\n");
                s_glue(r, line.s);
            }
            break;
        }
        if (!s_punct_is(&lx, &t, ","))
            break;
    }
    free(line.s);
}

/* Go: the names used as `name.` in text, outside strings and comments, not after a dot. */
static void s_go_used(const char *text, size_t len, s_keyset_t *used, s_buf_t *names)
{
    s_lexer_t lx;
    s_lexer_init(&lx, CS_GO, text, len);
    s_tok_t t, prev = {0};
    while (s_lex(&lx, &t)) {
        if (t.type == T_IDENT && !(prev.type == T_PUNCT && s_is(&lx, &prev, "."))) {
            s_tok_t p = s_peek(&lx);
            if (s_punct_is(&lx, &p, ".")) {
                /* the names in one buffer of NUL-separated strings, indexed below */
                s_buf_add(names, text + t.start, t.end - t.start);
                s_buf_add(names, "", 1);
            }
        }
        prev = t;
    }
    /* the buffer does not move any more: index it */
    for (size_t off = 0; off < names->len; off += strlen(names->s + off) + 1)
        s_keyset_add(used, names->s + off, 0);
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

    if (s_is_c(self->lang)) {
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
        s_glue(main_r, s_is_c(self->lang) ? ";\nreturn 0;\n}\n" : "\n}\n");
    }
    if (self->lang == CS_GO) {
        s_keyset_t used;
        s_buf_t names = {0};
        s_keyset_init(&used, body.b.len / 2 + 1);
        s_go_used(body.b.s ? body.b.s : "", body.b.len, &used, &names);
        for (size_t i = 0; i < n; i++) {
            if (kept[i]->kind != CS_HEAD)
                continue;
            const char *name = s_go_import_name(kept[i]);
            if (!name || s_keyset_find(&used, name) != SIZE_MAX)
                s_chunk(&r, kept[i], "import ");
        }
        s_keyset_free(&used);
        free(names.s);
        s_buf_add(&r.b, body.b.s ? body.b.s : "", body.b.len);
        for (size_t i = 0; i < body.nlines; i++)
            s_map(&r, body.cells[i], body.lines[i]);
        free(body.b.s);
        free(body.cells);
        free(body.lines);
    }
    free(kept);
    cs_source_t *src = cb_xcalloc(1, sizeof *src);
    src->len = r.b.len;
    src->text = s_buf_take(&r.b);
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
    while (*p < end && s_digit(**p) && digits < 9) {
        v = v * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    return digits ? v : -1;
}

char *cs_map_rust_output(const cs_source_t *src, const char *out, size_t len)
{
    s_buf_t b = {0};
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
            s_buf_fmt(&b, "%*d", width, line);
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
                s_buf_add(&b, p, (size_t)(le - p));
                p = le;
                break;
            }
            s_buf_add(&b, p, (size_t)(hit - p));
            const char *np = hit + flen;
            long gen2 = s_number(&np, le);
            int cell = 0, line = 0;
            if (gen2 > 0)
                cs_source_origin(src, (int)gen2, &cell, &line);
            if (gen2 > 0 && cell > 0) {
                s_buf_fmt(&b, "cell[%d]:%d", cell, line);
                p = np;
            } else {
                s_buf_add(&b, hit, flen);
                p = hit + flen;
            }
        }
        if (eol) {
            s_buf_add(&b, "\n", 1);
            p = eol + 1;
        }
    }
    return s_buf_take(&b);
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
            if (s_is_c(lang))
                hit = memmem(p, n, ": error: ", 9) || memmem(p, n, ": fatal error: ", 15) ||
                      memmem(p, n, "undefined reference to", 22); /* the linker's, first */
            else if (lang == CS_RUST)
                hit = n >= 5 && memcmp(p, "error", 5) == 0;
            else
                hit = *p != '#';
            if (hit)
                return cb_xstrndup(p, n);
        }
        p = eol ? eol + 1 : end;
    }
    return first ? cb_xstrndup(first, (size_t)(first_end - first)) : cb_xstrdup("");
}

const char *cs_is_complete(cs_lang_t lang, const char *code, size_t len)
{
    s_lexer_t lx;
    s_lexer_init(&lx, lang, code ? code : "", code ? len : 0);
    long depth = 0;
    s_tok_t t;
    while (s_lex(&lx, &t)) {
        if (s_is_open(&lx, &t))
            depth++;
        else if (s_is_close(&lx, &t))
            depth--;
    }
    return depth > 0 || lx.open ? "incomplete" : "complete";
}
