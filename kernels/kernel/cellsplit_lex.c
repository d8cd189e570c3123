/* kernels/kernel/cellsplit_lex.c: the tokenizer cellsplit reads C, C++, Rust and Go with, and
 * the growing buffers it writes with.
 *
 * cs_lex skips blanks and comments (Rust's nest) and returns identifiers, numbers, literals
 * (strings and characters with their escapes, C++ raw strings R"x(...)x" and prefixes, Rust raw
 * and byte strings, Rust lifetimes told from char literals, Go's backquote strings and runes),
 * punctuation (the multi-character operators that matter: ::, ->, <<, ==, :=, ...) and, for C
 * and C++, whole preprocessor lines with their \ continuations; each token says whether a newline
 * came before it (Go's semicolons). Every call consumes at least one byte, so nothing loops, and
 * a literal or comment that runs off the end sets lx->open (is_complete) instead of failing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb/alloc.h"
#include "cellsplit_int.h"

/* ---- copies ---------------------------------------------------------------------------- */

char *cs_copy(const char *s, size_t n)
{
    char *c = cb_xmalloc(n + 1);
    memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

/* ---- the tokenizer ------------------------------------------------------------------------ */

void cs_lexer_init(cs_lexer_t *lx, cs_lang_t lang, const char *s, size_t len)
{
    *lx = (cs_lexer_t){.lang = lang, .s = s, .len = len, .line_start = true};
}

bool cs_is_c(cs_lang_t lang) { return lang == CS_C || lang == CS_CPP; }

static bool s_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || c >= 0x80;
}

static bool s_ident_char(unsigned char c) { return s_ident_start(c) || (c >= '0' && c <= '9'); }

bool cs_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Blanks and comments; sets *nl when a newline was among them. */
static void s_skip_space(cs_lexer_t *lx, bool *nl)
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
        } else if (c == '\\' && cs_is_c(lx->lang) && lx->pos + 1 < lx->len &&
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
static void s_skip_quoted(cs_lexer_t *lx, char quote, bool multiline)
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
static void s_skip_cpp_raw(cs_lexer_t *lx)
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
static void s_skip_rust_raw(cs_lexer_t *lx)
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

bool cs_lex(cs_lexer_t *lx, cs_tok_t *t)
{
    bool nl = false;
    s_skip_space(lx, &nl);
    const char *s = lx->s;
    *t = (cs_tok_t){.type = CS_T_EOF, .start = lx->pos, .end = lx->pos, .nl_before = nl};
    if (lx->pos >= lx->len)
        return false;
    unsigned char c = (unsigned char)s[lx->pos];
    size_t start = lx->pos;
    bool at_line_start = lx->line_start;
    lx->line_start = false;

    if (c == '#' && at_line_start && cs_is_c(lx->lang)) {
        while (lx->pos < lx->len && s[lx->pos] != '\n') {
            if (s[lx->pos] == '\\' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '\n')
                lx->pos += 2;
            else if (s[lx->pos] == '\\' && lx->pos + 2 < lx->len && s[lx->pos + 1] == '\r' &&
                     s[lx->pos + 2] == '\n')
                lx->pos += 3;
            else
                lx->pos++;
        }
        t->type = CS_T_PP;
    } else if (s_ident_start(c)) {
        while (lx->pos < lx->len && s_ident_char((unsigned char)s[lx->pos]))
            lx->pos++;
        size_t n = lx->pos - start;
        const char *w = s + start;
        char next = lx->pos < lx->len ? s[lx->pos] : '\0';
        t->type = CS_T_IDENT;
        if (cs_is_c(lx->lang)) {
            bool prefix = (n == 1 && (*w == 'L' || *w == 'u' || *w == 'U')) ||
                          (n == 2 && memcmp(w, "u8", 2) == 0);
            bool raw_prefix = (n == 1 && *w == 'R') ||
                              (n == 2 && w[1] == 'R' && strchr("LuU", w[0])) ||
                              (n == 3 && memcmp(w, "u8R", 3) == 0);
            if (next == '"' && raw_prefix && lx->lang == CS_CPP) {
                s_skip_cpp_raw(lx);
                t->type = CS_T_STR;
            } else if ((next == '"' || next == '\'') && prefix) {
                s_skip_quoted(lx, next, false);
                t->type = CS_T_STR;
            }
        } else if (lx->lang == CS_RUST) {
            bool raw = (n == 1 && *w == 'r') || (n == 2 && memcmp(w, "br", 2) == 0);
            if (raw && (next == '"' || next == '#')) {
                size_t before = lx->pos;
                s_skip_rust_raw(lx);
                if (lx->pos != before)
                    t->type = CS_T_STR;
            } else if (n == 1 && *w == 'b' && (next == '"' || next == '\'')) {
                s_skip_quoted(lx, next, next == '"');
                t->type = CS_T_STR;
            }
        }
    } else if (cs_digit(c) || (c == '.' && lx->pos + 1 < lx->len && cs_digit(s[lx->pos + 1]))) {
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
        t->type = CS_T_NUM;
    } else if (c == '"') {
        s_skip_quoted(lx, '"', lx->lang == CS_RUST);
        t->type = CS_T_STR;
    } else if (c == '`' && lx->lang == CS_GO) {
        const char *q = memchr(s + lx->pos + 1, '`', lx->len - lx->pos - 1);
        if (q) {
            lx->pos = (size_t)(q - s) + 1;
        } else {
            lx->pos = lx->len;
            lx->open = true;
        }
        t->type = CS_T_STR;
    } else if (c == '\'' && lx->lang == CS_RUST) {
        /* a char literal ('x', '\n', 'é') or a lifetime ('a, 'static) */
        size_t p = lx->pos + 1;
        if (p < lx->len && s[p] == '\\') {
            s_skip_quoted(lx, '\'', false);
            t->type = CS_T_STR;
        } else if (p < lx->len) {
            size_t n = s_utf8_len((unsigned char)s[p]);
            if (p + n < lx->len && s[p + n] == '\'') {
                lx->pos = p + n + 1;
                t->type = CS_T_STR;
            } else {
                lx->pos = p;
                while (lx->pos < lx->len && s_ident_char((unsigned char)s[lx->pos]))
                    lx->pos++;
                t->type = CS_T_IDENT;
            }
        } else {
            lx->pos = p;
            t->type = CS_T_PUNCT;
        }
    } else if (c == '\'') {
        s_skip_quoted(lx, '\'', false);
        t->type = CS_T_STR;
    } else {
        t->type = CS_T_PUNCT;
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

cs_tok_t cs_peek(const cs_lexer_t *lx)
{
    cs_lexer_t copy = *lx;
    cs_tok_t t;
    cs_lex(&copy, &t);
    return t;
}

bool cs_tok_is(const cs_lexer_t *lx, const cs_tok_t *t, const char *word)
{
    size_t n = strlen(word);
    return t->type != CS_T_EOF && t->end - t->start == n && memcmp(lx->s + t->start, word, n) == 0;
}

bool cs_tok_is_any(const cs_lexer_t *lx, const cs_tok_t *t, const char *const *words)
{
    for (; *words; words++)
        if (cs_tok_is(lx, t, *words))
            return true;
    return false;
}

bool cs_tok_is_open(const cs_lexer_t *lx, const cs_tok_t *t)
{
    return t->type == CS_T_PUNCT && t->end - t->start == 1 && strchr("([{", lx->s[t->start]) &&
           lx->s[t->start] != '\0';
}

bool cs_tok_is_close(const cs_lexer_t *lx, const cs_tok_t *t)
{
    return t->type == CS_T_PUNCT && t->end - t->start == 1 && strchr(")]}", lx->s[t->start]) &&
           lx->s[t->start] != '\0';
}

bool cs_punct_is(const cs_lexer_t *lx, const cs_tok_t *t, const char *p)
{
    return t->type == CS_T_PUNCT && cs_tok_is(lx, t, p);
}

/* The tokens of text joined by single spaces: a key that ignores layout and comments. */
char *cs_norm(cs_lang_t lang, const char *text, size_t len)
{
    cs_lexer_t lx;
    cs_lexer_init(&lx, lang, text, len);
    cb_buf_t b = {0};
    cs_tok_t t;
    while (cs_lex(&lx, &t)) {
        if (b.len)
            cb_buf_append(&b, " ", 1);
        cb_buf_append(&b, text + t.start, t.end - t.start);
    }
    return cb_buf_take(&b);
}

/* Go's keywords but break, continue, fallthrough and return (after which a newline is a ;). */
const char *const cs_go_keywords[] = {
    "func",    "struct", "interface", "map",   "chan", "else",  "if",   "for",
    "switch",  "select", "go",        "defer", "var",  "const", "type", "import",
    "package", "case",   "default",   "range", "goto", NULL};
