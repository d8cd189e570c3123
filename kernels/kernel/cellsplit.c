/* kernels/kernel/cellsplit.c: cells of C, C++, Rust and Go cut into items (the rules are in
 * cellsplit.h).
 *
 * How: a scanner per language family walks the tokens of a cell (cellsplit_lex.c) with a
 * bracket depth and cuts items at their ends (C: ; or a closing } that ends a body; Rust: ; or a
 * closing }; Go: ; or a newline where Go would insert one); then each item's own tokens are read
 * again to classify it and find its key. Nothing here looks more than a few tokens ahead, so
 * every input takes linear time. Keeping and rendering are in cellrender.c.
 */
#include "cellsplit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb/alloc.h"
#include "cellsplit_int.h"

/* ---- token helpers ----------------------------------------------------------------------- */

/* With the lexer before a keyword: is the token after the keyword a string (extern "C")? */
static bool s_second_is_string(const cs_lexer_t *lx)
{
    cs_lexer_t l2 = *lx;
    cs_tok_t t;
    cs_lex(&l2, &t);
    cs_lex(&l2, &t);
    return t.type == CS_T_STR;
}

static bool s_next_is(const cs_lexer_t *lx, const char *word)
{
    cs_tok_t t = cs_peek(lx);
    return cs_tok_is(lx, &t, word);
}

/* ---- cells -------------------------------------------------------------------------------- */

typedef struct {
    cs_lang_t lang;
    const char *code;
    size_t len;
    cs_cell_t *cell;
    /* line counting, forward only: lines[...] up to line_pos */
    size_t line_pos;
    int line_no;
} s_split_t;

void cs_item_free(cs_item_t *it)
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
        .text = cs_copy(sp->code + start, end - start),
        .indent = indent,
        .line = s_line_of(sp, start),
        .cell = c->cell_no,
    };
    if (kind == CS_MAIN)
        c->has_main = true;
}

static char *s_key(const char *kind, const cs_lexer_t *lx, const cs_tok_t *name)
{
    cb_buf_t b = {0};
    cb_buf_printf(&b, "%s", kind);
    cb_buf_append(&b, lx->s + name->start, name->end - name->start);
    return cb_buf_take(&b);
}

static char *s_text_key(cs_lang_t lang, const char *text, size_t len)
{
    char *norm = cs_norm(lang, text, len);
    cb_buf_t b = {0};
    cb_buf_printf(&b, "%s", "text:");
    cb_buf_printf(&b, "%s", norm);
    free(norm);
    return cb_buf_take(&b);
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
    cs_tok_t last;      /* the last name (its ident chain, without template arguments) */
    cs_tok_t stop;      /* the stop token (CS_T_EOF at the end) */
} s_decl_t;

/* Skip balanced brackets from an opening token already read; false when the text ran out. */
static bool s_skip_group(cs_lexer_t *lx)
{
    size_t depth = 1;
    cs_tok_t t;
    while (cs_lex(lx, &t)) {
        if (cs_tok_is_open(lx, &t))
            depth++;
        else if (cs_tok_is_close(lx, &t) && --depth == 0)
            return true;
    }
    return false;
}

/* After a name, '<' ... '>' with nesting; the lexer is left after it only when it is one. */
static bool s_skip_template_args(cs_lexer_t *lx)
{
    cs_lexer_t save = *lx;
    cs_tok_t t;
    cs_lex(lx, &t); /* the '<' */
    long depth = 1;
    while (cs_lex(lx, &t)) {
        if (t.type == CS_T_PUNCT) {
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

/* The declaration rule (cellsplit.h), from the lexer's position. */
static s_decl_t s_decl_rule(cs_lexer_t *lx)
{
    s_decl_t d = {0};
    cs_tok_t t;
    static const char *const stops[] = {"=", "(", "[", "{", ";", ",", ":", NULL};
    for (;;) {
        if (!cs_lex(lx, &t)) {
            d.stop = t;
            return d;
        }
        if (t.type == CS_T_PUNCT && cs_tok_is_any(lx, &t, stops)) {
            /* [[attribute]] at the start is not a stop */
            if (d.names == 0 && cs_punct_is(lx, &t, "[")) {
                cs_tok_t p = cs_peek(lx);
                if (cs_punct_is(lx, &p, "[")) {
                    s_skip_group(lx);
                    continue;
                }
            }
            d.stop = t;
            return d;
        }
        if (t.type == CS_T_PUNCT &&
            (cs_tok_is(lx, &t, "*") || cs_tok_is(lx, &t, "&") || cs_tok_is(lx, &t, "&&")))
            continue;
        if (t.type == CS_T_IDENT &&
            (cs_tok_is(lx, &t, "__attribute__") || cs_tok_is(lx, &t, "alignas") ||
             cs_tok_is(lx, &t, "__declspec"))) {
            cs_tok_t p = cs_peek(lx);
            if (cs_punct_is(lx, &p, "(")) {
                cs_lex(lx, &p);
                s_skip_group(lx);
            }
            continue;
        }
        if (t.type == CS_T_IDENT || cs_punct_is(lx, &t, "::")) {
            /* one name: [::] ident (:: [~] ident)* [<...>], or operator <symbol> */
            cs_tok_t name = t;
            bool qualified = t.type == CS_T_PUNCT;
            if (t.type == CS_T_PUNCT) {
                cs_tok_t p = cs_peek(lx);
                if (p.type != CS_T_IDENT)
                    return (s_decl_t){.operator_seen = true};
                cs_lex(lx, &p);
                name.end = p.end;
            }
            for (;;) {
                cs_tok_t p = cs_peek(lx);
                if (!cs_punct_is(lx, &p, "::"))
                    break;
                cs_lexer_t save = *lx;
                cs_lex(lx, &p);
                cs_tok_t q;
                cs_lex(lx, &q);
                if (cs_punct_is(lx, &q, "~"))
                    cs_lex(lx, &q);
                if (q.type != CS_T_IDENT) {
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
                cs_tok_t p;
                cs_lex(lx, &p);
                if (cs_punct_is(lx, &p, "(") || cs_punct_is(lx, &p, "[")) {
                    cs_tok_t q;
                    cs_lex(lx, &q);
                    p.end = q.end;
                }
                if (p.type != CS_T_EOF)
                    name.end = p.end;
            }
            cs_tok_t p = cs_peek(lx);
            if (cs_punct_is(lx, &p, "<"))
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
    cs_tok_t first;
    bool eq, paren, class_kw, brace; /* seen at depth 0 before the first { */
} s_c_item_t;

static bool s_c_ends_at_brace(const cs_lexer_t *lx, const s_c_item_t *it)
{
    if (cs_punct_is(lx, &it->first, "{") || cs_tok_is_any(lx, &it->first, s_c_stmt_words))
        return true;
    if (it->eq)
        return false;
    if (cs_tok_is(lx, &it->first, "namespace") || cs_tok_is(lx, &it->first, "extern"))
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
    cs_lexer_t lx;
    cs_lexer_init(&lx, sp->lang, text, len);
    cs_tok_t first;
    cs_lex(&lx, &first);

    if (first.type == CS_T_PP) {
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
            cs_lexer_t dl;
            cs_lexer_init(&dl, sp->lang, p + 6, rest - 6);
            cs_tok_t name;
            if (cs_lex(&dl, &name) && name.type == CS_T_IDENT) {
                s_add(sp, CS_DEF, s_key("define:", &dl, &name), start, end);
                return;
            }
        }
        s_add(sp, CS_DEF, s_text_key(sp->lang, text, len), start, end);
        return;
    }
    if (cs_punct_is(&lx, &first, "{") || cs_tok_is_any(&lx, &first, s_c_stmt_words)) {
        s_add(sp, CS_STMT, NULL, start, end);
        return;
    }
    /* template<...> before a function or a class */
    cs_tok_t head = first;
    if (cs_tok_is(&lx, &first, "template")) {
        cs_tok_t p = cs_peek(&lx);
        if (cs_punct_is(&lx, &p, "<"))
            s_skip_template_args(&lx);
        cs_lexer_t save = lx;
        if (!cs_lex(&lx, &head)) {
            s_add(sp, CS_DEF, s_text_key(sp->lang, text, len), start, end);
            return;
        }
        lx = save;
    } else {
        lx = (cs_lexer_t){0};
        cs_lexer_init(&lx, sp->lang, text, len);
    }
    cs_lexer_t at_head = lx; /* before head */

    if (cs_tok_is(&lx, &head, "typedef")) {
        /* the key is the last identifier at depth 0 */
        cs_tok_t t, last = {0};
        long depth = 0;
        while (cs_lex(&lx, &t)) {
            if (cs_tok_is_open(&lx, &t))
                depth++;
            else if (cs_tok_is_close(&lx, &t) && depth > 0)
                depth--;
            else if (depth == 0 && t.type == CS_T_IDENT)
                last = t;
        }
        char *key = last.type == CS_T_IDENT && !cs_tok_is(&lx, &last, "typedef")
                        ? s_key("type:", &lx, &last)
                        : s_text_key(sp->lang, text, len);
        s_add(sp, CS_DEF, key, start, end);
        return;
    }
    if (cs_tok_is(&lx, &head, "using")) {
        cs_tok_t t;
        cs_lex(&lx, &t); /* using */
        cs_tok_t name, eq;
        if (cs_lex(&lx, &name) && name.type == CS_T_IDENT && cs_lex(&lx, &eq) &&
            cs_punct_is(&lx, &eq, "="))
            s_add(sp, CS_DEF, s_key("type:", &lx, &name), start, end);
        else
            s_add(sp, CS_DEF, s_text_key(sp->lang, text, len), start, end);
        return;
    }
    if (cs_tok_is(&lx, &head, "namespace") || cs_tok_is(&lx, &head, "static_assert") ||
        (cs_tok_is(&lx, &head, "extern") && s_second_is_string(&lx))) {
        s_add(sp, CS_DEF, s_text_key(sp->lang, text, len), start, end);
        return;
    }
    /* struct S {...}; class C : B {...}; enum class E {...}; — a type definition */
    if (cs_tok_is_any(&lx, &head, s_c_class_words)) {
        cs_lexer_t l2 = lx;
        cs_tok_t t, name = {0};
        bool brace = false;
        cs_lex(&l2, &t); /* the keyword */
        while (cs_lex(&l2, &t)) {
            if (cs_punct_is(&l2, &t, "{")) {
                brace = true;
                break;
            }
            if (cs_punct_is(&l2, &t, "(") || cs_punct_is(&l2, &t, ";") ||
                cs_punct_is(&l2, &t, "=") || cs_punct_is(&l2, &t, ":") || cs_punct_is(&l2, &t, "*"))
                break;
            if (t.type == CS_T_IDENT && !cs_tok_is(&l2, &t, "class") &&
                !cs_tok_is(&l2, &t, "struct") && !cs_tok_is(&l2, &t, "final") &&
                !cs_tok_is(&l2, &t, "alignas"))
                name = t;
        }
        if (brace || cs_punct_is(&l2, &t, ":")) {
            /* a definition (the : of a base list or an enum's type comes before its {) */
            char *key = name.type == CS_T_IDENT ? s_key("type:", &l2, &name)
                                                : s_text_key(sp->lang, text, len);
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
    bool paren = cs_punct_is(&lx, &d.stop, "(");
    if (paren && body) {
        if (cs_tok_is(&lx, &d.last, "main")) {
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
    cs_lexer_t lx;
    cs_lexer_init(&lx, sp->lang, sp->code, sp->len);
    cs_tok_t t;
    while (cs_lex(&lx, &t)) {
        if (t.type == CS_T_PP) {
            s_c_classify(sp, t.start, t.end);
            continue;
        }
        if (cs_punct_is(&lx, &t, ";"))
            continue; /* an empty item */
        s_c_item_t it = {.first = t};
        size_t start = t.start, end = t.end;
        long depth = 0;
        for (;;) {
            end = t.end;
            if (depth == 0 && !it.brace) {
                if (cs_punct_is(&lx, &t, "="))
                    it.eq = true;
                else if (cs_punct_is(&lx, &t, "("))
                    it.paren = true;
                else if (cs_tok_is_any(&lx, &t, s_c_class_words))
                    it.class_kw = true;
            }
            if (cs_tok_is_open(&lx, &t)) {
                if (depth == 0 && lx.s[t.start] == '{')
                    it.brace = true;
                depth++;
            } else if (cs_tok_is_close(&lx, &t)) {
                if (depth == 0)
                    break; /* a stray closer ends the item */
                depth--;
                if (depth == 0 && lx.s[t.start] == '}') {
                    cs_tok_t p = cs_peek(&lx);
                    if (cs_punct_is(&lx, &p, ";")) {
                        cs_lex(&lx, &t);
                        end = t.end;
                        break;
                    }
                    bool goes_on = cs_tok_is(&lx, &p, "else") || cs_tok_is(&lx, &p, "catch") ||
                                   (cs_tok_is(&lx, &p, "while") && cs_tok_is(&lx, &it.first, "do"));
                    if (!goes_on && s_c_ends_at_brace(&lx, &it))
                        break;
                }
            } else if (depth == 0 && cs_punct_is(&lx, &t, ";")) {
                break;
            }
            if (!cs_lex(&lx, &t))
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
static void s_rust_head(cs_lexer_t *lx, cs_tok_t first, cs_tok_t *kw)
{
    cs_tok_t t = first;
    for (;;) {
        if (cs_punct_is(lx, &t, "#")) {
            cs_tok_t p = cs_peek(lx);
            if (cs_punct_is(lx, &p, "[")) {
                cs_lex(lx, &p);
                s_skip_group(lx);
                if (!cs_lex(lx, &t))
                    break;
                continue;
            }
            break;
        }
        if (cs_tok_is(lx, &t, "pub")) {
            cs_tok_t p = cs_peek(lx);
            if (cs_punct_is(lx, &p, "(")) {
                cs_lex(lx, &p);
                s_skip_group(lx);
            }
            if (!cs_lex(lx, &t))
                break;
            continue;
        }
        if (cs_tok_is(lx, &t, "unsafe") || cs_tok_is(lx, &t, "async") ||
            cs_tok_is(lx, &t, "default")) {
            cs_tok_t p = cs_peek(lx);
            if (p.type != CS_T_IDENT)
                break;
            cs_lex(lx, &t);
            continue;
        }
        if (cs_tok_is(lx, &t, "const")) {
            cs_tok_t p = cs_peek(lx);
            if (cs_tok_is(lx, &p, "fn") || cs_tok_is(lx, &p, "unsafe") ||
                cs_tok_is(lx, &p, "async")) {
                cs_lex(lx, &t);
                continue;
            }
            break;
        }
        if (cs_tok_is(lx, &t, "extern")) {
            cs_lexer_t save = *lx;
            cs_tok_t p;
            cs_lex(lx, &p);
            if (p.type == CS_T_STR) {
                cs_tok_t q = cs_peek(lx);
                if (cs_tok_is(lx, &q, "fn") || cs_tok_is(lx, &q, "unsafe")) {
                    cs_lex(lx, &t);
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
    cs_lexer_t lx;
    cs_lexer_init(&lx, sp->lang, text, len);
    cs_tok_t first, kw, name;
    cs_lex(&lx, &first);
    s_rust_head(&lx, first, &kw);
    if (!cs_tok_is_any(&lx, &kw, s_rust_item_words)) {
        s_add(sp, CS_STMT, NULL, start, end);
        return;
    }
    cs_lexer_t after_kw = lx;
    bool have_name = cs_lex(&lx, &name);
    if (cs_tok_is(&lx, &kw, "static") && cs_tok_is(&lx, &name, "mut"))
        have_name = cs_lex(&lx, &name);
    if (cs_tok_is(&lx, &kw, "macro_rules")) {
        cs_tok_t bang = name;
        have_name = cs_punct_is(&lx, &bang, "!") && cs_lex(&lx, &name);
    }
    have_name = have_name && name.type == CS_T_IDENT;
    if (cs_tok_is(&lx, &kw, "fn") && have_name && cs_tok_is(&lx, &name, "main")) {
        s_add(sp, CS_MAIN, NULL, start, end);
        return;
    }
    char *key = NULL;
    if (cs_tok_is(&lx, &kw, "impl")) {
        /* impl<T> Trait for Type: its header up to the { is the key */
        lx = after_kw;
        cs_tok_t t;
        size_t hs = kw.start, he = kw.end;
        while (cs_lex(&lx, &t) && !cs_punct_is(&lx, &t, "{"))
            he = t.end;
        char *norm = cs_norm(sp->lang, text + hs, he - hs);
        cb_buf_t b = {0};
        cb_buf_printf(&b, "%s", "impl:");
        cb_buf_printf(&b, "%s", norm);
        free(norm);
        key = cb_buf_take(&b);
    } else if (have_name && (cs_tok_is(&lx, &kw, "fn") || cs_tok_is(&lx, &kw, "const") ||
                             cs_tok_is(&lx, &kw, "static"))) {
        key = s_key("value:", &lx, &name);
    } else if (have_name && cs_tok_is(&lx, &kw, "macro_rules")) {
        key = s_key("macro:", &lx, &name);
    } else if (have_name && !cs_tok_is(&lx, &kw, "use") && !cs_tok_is(&lx, &kw, "extern")) {
        key = s_key("type:", &lx, &name); /* struct, enum, trait, mod, type, union */
    } else {
        key = s_text_key(sp->lang, text, len);
    }
    s_add(sp, CS_DEF, key, start, end);
}

static void s_split_rust(s_split_t *sp)
{
    cs_lexer_t lx;
    cs_lexer_init(&lx, sp->lang, sp->code, sp->len);
    cs_tok_t t;
    while (cs_lex(&lx, &t)) {
        if (cs_punct_is(&lx, &t, ";"))
            continue;
        size_t start = t.start, end = t.end;
        /* #![...] */
        if (cs_punct_is(&lx, &t, "#")) {
            cs_lexer_t l2 = lx;
            cs_tok_t bang, br;
            if (cs_lex(&l2, &bang) && cs_punct_is(&l2, &bang, "!") && cs_lex(&l2, &br) &&
                cs_punct_is(&l2, &br, "[")) {
                lx = l2;
                s_skip_group(&lx);
                s_rust_classify(sp, start, lx.pos, true);
                continue;
            }
        }
        /* an item or a statement: which one decides where it may end */
        cs_lexer_t l2 = lx;
        cs_tok_t kw;
        s_rust_head(&l2, t, &kw);
        bool item = cs_tok_is_any(&l2, &kw, s_rust_item_words);
        bool to_semicolon = item && (cs_tok_is(&l2, &kw, "use") || cs_tok_is(&l2, &kw, "const") ||
                                     cs_tok_is(&l2, &kw, "static") || cs_tok_is(&l2, &kw, "type") ||
                                     (cs_tok_is(&l2, &kw, "extern") && s_next_is(&l2, "crate")));
        long depth = 0;
        for (;;) {
            end = t.end;
            if (cs_tok_is_open(&lx, &t)) {
                depth++;
            } else if (cs_tok_is_close(&lx, &t)) {
                if (depth == 0)
                    break;
                depth--;
                if (depth == 0 && lx.s[t.start] == '}' && !to_semicolon) {
                    cs_tok_t p = cs_peek(&lx);
                    if (cs_punct_is(&lx, &p, ";")) {
                        cs_lex(&lx, &t); /* S { x: 1 }; ends with its ; */
                        end = t.end;
                        break;
                    }
                    if (item || !cs_tok_is(&lx, &p, "else"))
                        break;
                }
            } else if (depth == 0 && cs_punct_is(&lx, &t, ";")) {
                break;
            }
            if (!cs_lex(&lx, &t))
                break;
        }
        s_rust_classify(sp, start, end, false);
    }
}

/* ---- Go ----------------------------------------------------------------------------------- */

/* Would Go insert a semicolon after t at a newline? */
static bool s_go_semi_after(const cs_lexer_t *lx, const cs_tok_t *t)
{
    static const char *const words[] = {"break", "continue", "fallthrough", "return", "++",
                                        "--",    ")",        "]",           "}",      NULL};
    if (t->type == CS_T_IDENT || t->type == CS_T_NUM || t->type == CS_T_STR)
        return t->type != CS_T_IDENT || !cs_tok_is_any(lx, t, cs_go_keywords) ||
               cs_tok_is_any(lx, t, words);
    return cs_tok_is_any(lx, t, words);
}

/* One import spec [start, end) of a Go import declaration: name "path" or "path". */
static void s_go_import_spec(s_split_t *sp, size_t start, size_t end)
{
    cs_lexer_t lx;
    cs_lexer_init(&lx, sp->lang, sp->code + start, end - start);
    cs_tok_t a, b;
    if (!cs_lex(&lx, &a))
        return;
    cs_tok_t path = a, alias = {0};
    if (a.type != CS_T_STR && cs_lex(&lx, &b)) {
        alias = a;
        path = b;
    }
    if (path.type != CS_T_STR) {
        s_add(sp, CS_STMT, NULL, start, end); /* the compiler says what is wrong */
        return;
    }
    cb_buf_t k = {0};
    cb_buf_printf(&k, "%s", "import:");
    if (alias.type != CS_T_EOF && (cs_tok_is(&lx, &alias, "_") || cs_tok_is(&lx, &alias, "."))) {
        char *norm = cs_norm(sp->lang, sp->code + start, end - start);
        cb_buf_printf(&k, "%s", norm);
        free(norm);
    } else if (alias.type != CS_T_EOF) {
        cb_buf_append(&k, lx.s + alias.start, alias.end - alias.start);
    } else {
        /* the package name is the path's last element (its quotes off) */
        const char *p = lx.s + path.start + 1;
        size_t n = path.end - path.start >= 2 ? path.end - path.start - 2 : 0;
        const char *slash = n ? memrchr(p, '/', n) : NULL;
        if (slash) {
            n -= (size_t)(slash + 1 - p);
            p = slash + 1;
        }
        cb_buf_append(&k, p, n);
    }
    s_add(sp, CS_HEAD, cb_buf_take(&k), start, end);
}

static void s_go_classify(s_split_t *sp, size_t start, size_t end)
{
    const char *text = sp->code + start;
    size_t len = end - start;
    cs_lexer_t lx;
    cs_lexer_init(&lx, sp->lang, text, len);
    cs_tok_t kw, t;
    cs_lex(&lx, &kw);
    if (cs_tok_is(&lx, &kw, "package")) {
        s_add(sp, CS_DROP, NULL, start, end);
        return;
    }
    if (cs_tok_is(&lx, &kw, "import")) {
        cs_tok_t p = cs_peek(&lx);
        if (!cs_punct_is(&lx, &p, "(")) {
            size_t s0 = p.start;
            s_go_import_spec(sp, start + s0, end);
            return;
        }
        cs_lex(&lx, &p);
        /* specs: up to ; or a newline, until ) */
        size_t spec_start = 0, spec_end = 0;
        bool in_spec = false;
        while (cs_lex(&lx, &t)) {
            bool close = cs_punct_is(&lx, &t, ")");
            if (in_spec && (t.nl_before || cs_punct_is(&lx, &t, ";") || close)) {
                s_go_import_spec(sp, start + spec_start, start + spec_end);
                in_spec = false;
            }
            if (close)
                break;
            if (cs_punct_is(&lx, &t, ";"))
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
    if (cs_tok_is(&lx, &kw, "func")) {
        cs_tok_t p;
        if (!cs_lex(&lx, &p)) {
            s_add(sp, CS_STMT, NULL, start, end);
            return;
        }
        if (cs_punct_is(&lx, &p, "(")) {
            /* a method: func (r *T) Name(...) */
            cs_tok_t recv = {0};
            long depth = 1;
            while (depth > 0 && cs_lex(&lx, &t)) {
                if (cs_tok_is_open(&lx, &t))
                    depth++;
                else if (cs_tok_is_close(&lx, &t))
                    depth--;
                else if (depth == 1 && t.type == CS_T_IDENT)
                    recv = t;
            }
            cs_tok_t name;
            if (recv.type == CS_T_IDENT && cs_lex(&lx, &name) && name.type == CS_T_IDENT) {
                cb_buf_t b = {0};
                cb_buf_printf(&b, "%s", "method:");
                cb_buf_append(&b, lx.s + recv.start, recv.end - recv.start);
                cb_buf_append(&b, ".", 1);
                cb_buf_append(&b, lx.s + name.start, name.end - name.start);
                key = cb_buf_take(&b);
            }
        } else if (p.type == CS_T_IDENT) {
            if (cs_tok_is(&lx, &p, "main")) {
                s_add(sp, CS_MAIN, NULL, start, end);
                return;
            }
            if (!cs_tok_is(&lx, &p, "init"))
                key = s_key("name:", &lx, &p);
        } else {
            s_add(sp, CS_STMT, NULL, start, end); /* func() { ... }() */
            return;
        }
    } else if (cs_tok_is(&lx, &kw, "type") || cs_tok_is(&lx, &kw, "var") ||
               cs_tok_is(&lx, &kw, "const")) {
        cs_tok_t name;
        if (cs_lex(&lx, &name) && name.type == CS_T_IDENT)
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
    cs_lexer_t lx;
    cs_lexer_init(&lx, sp->lang, sp->code, sp->len);
    cs_tok_t t;
    while (cs_lex(&lx, &t)) {
        if (cs_punct_is(&lx, &t, ";"))
            continue;
        size_t start = t.start, end = t.end;
        long depth = 0;
        /* a statement goes on after a ; (for i := 0; i < n; i++): only a newline ends it */
        static const char *const decl_words[] = {"package", "import", "func", "type",
                                                 "var",     "const",  NULL};
        bool decl = cs_tok_is_any(&lx, &t, decl_words);
        for (;;) {
            end = t.end;
            if (cs_tok_is_open(&lx, &t))
                depth++;
            else if (cs_tok_is_close(&lx, &t) && depth > 0)
                depth--;
            else if (depth == 0 && decl && cs_punct_is(&lx, &t, ";"))
                break;
            cs_tok_t p = cs_peek(&lx);
            if (p.type == CS_T_EOF)
                break;
            if (depth == 0 && p.nl_before && s_go_semi_after(&lx, &t))
                break;
            cs_lex(&lx, &t);
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
    if (cs_is_c(lang))
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
        cs_item_free(&self->items[i]);
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
