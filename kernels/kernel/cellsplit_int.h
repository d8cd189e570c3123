/* kernels/kernel/cellsplit_int.h: what cellsplit's three files share (not for its users).
 *
 *   cellsplit_lex.c  the tokenizer of the four languages, and copies by length
 *   cellsplit.c      cells cut into items and classified
 *   cellrender.c     the definitions kept, the rendered program, the compiler's output
 */
#ifndef KN_CELLSPLIT_INT_H
#define KN_CELLSPLIT_INT_H
#include <stdbool.h>
#include <stddef.h>

#include "cb/util.h" /* cb_buf_t: the growing buffers (cb_xrealloc: they cannot fail) */
#include "cellsplit.h"

/* ---- copies ------------------------------------------------------------------------------- */

/* n bytes of s, NUL-terminated: cells and compiler output come with a length, no terminator
 * (strndup would look for one past the end). Caller owns return value. */
char *cs_copy(const char *s, size_t n);

/* ---- the tokenizer -------------------------------------------------------------------------- */

typedef enum { CS_T_EOF, CS_T_IDENT, CS_T_NUM, CS_T_STR, CS_T_PUNCT, CS_T_PP } cs_tok_type_t;

typedef struct {
    cs_tok_type_t type;
    size_t start, end; /* byte offsets in the lexer's text */
    bool nl_before;    /* a newline (or a comment holding one) came before it */
} cs_tok_t;

typedef struct {
    cs_lang_t lang;
    const char *s;
    size_t len, pos;
    bool line_start; /* only blanks since the last newline (C: # starts a directive) */
    bool open;       /* a block comment or a string ran off the end */
} cs_lexer_t;

void cs_lexer_init(cs_lexer_t *lx, cs_lang_t lang, const char *s, size_t len);
/* The next token into *t; false (and t->type CS_T_EOF) at the end. Every call consumes at least
 * one byte or returns false. */
bool cs_lex(cs_lexer_t *lx, cs_tok_t *t);
cs_tok_t cs_peek(const cs_lexer_t *lx); /* the next token, the lexer unmoved */
bool cs_tok_is(const cs_lexer_t *lx, const cs_tok_t *t, const char *word);
bool cs_tok_is_any(const cs_lexer_t *lx, const cs_tok_t *t, const char *const *words);
bool cs_punct_is(const cs_lexer_t *lx, const cs_tok_t *t, const char *p);
bool cs_tok_is_open(const cs_lexer_t *lx, const cs_tok_t *t);  /* ( [ { */
bool cs_tok_is_close(const cs_lexer_t *lx, const cs_tok_t *t); /* ) ] } */
bool cs_is_c(cs_lang_t lang);                                  /* C or C++ */
bool cs_digit(unsigned char c);
/* The tokens of text joined by single spaces: a key that ignores layout and comments. Caller
 * owns return value. */
char *cs_norm(cs_lang_t lang, const char *text, size_t len);
/* Go's keywords but break, continue, fallthrough and return; NULL-terminated. */
extern const char *const cs_go_keywords[];

/* ---- cells ---------------------------------------------------------------------------------- */

struct cs_cell {
    cs_lang_t lang;
    int cell_no;
    cs_item_t *items;
    size_t n, cap;
    bool has_main;
};

/* Free what an item owns (not the item). */
void cs_item_free(cs_item_t *it);

#endif
