/* kernels/kernel/cellsplit.h: how a cell of C, C++, Rust or Go becomes a program.
 *
 * The compiled languages have no REPL, so cellblock-kernel makes one: every cell is compiled,
 * together with the definitions of all earlier cells that compiled, into one program, and run.
 * These are pure functions (text in, text out: no files, no processes); compiled.c does the rest.
 *
 * A cell is cut into top-level ITEMS, each one of:
 *
 *   head        goes first in the program, kept for later cells:
 *                 C/C++  #include and #import lines
 *                 Rust   inner attributes #![...]
 *                 Go     each import spec (import "fmt", import f "fmt", import ( ... ) split)
 *   definition  kept for later cells, in the order they came:
 *                 C/C++  every other preprocessor line (#define with its \ continuations, ...);
 *                        functions with a body; struct/union/enum/class, namespace, template,
 *                        typedef, using, extern "C" {...}; global declarations: a `;`-terminated
 *                        item is a declaration when, before its first top-level = ( [ { ; , or :
 *                        (not ::), it has at least two names (identifiers or keywords; A::B and
 *                        T<...> count as one name) separated only by * & && (int x = 5;
 *                        static const char *s; std::vector<int> v; int f(int); struct S s;)
 *                 Rust   use, fn, struct, enum, impl, trait, mod, const, static, type, union,
 *                        extern crate, extern "C" {...}, macro_rules!, with pub / pub(...) /
 *                        unsafe / async / const / extern "abi" before them and the #[...]
 *                        attributes above them
 *                 Go     func (functions and methods), type, var, const
 *   statement   run as the body of main for this cell only, in the order they came, never kept:
 *               everything else (C/C++: if/for/while/do/switch/return/break/continue/goto/try/
 *               throw/new/delete/{...} and expression statements such as printf(...); x = 3;
 *               std::cout << x; x++;   Rust: let, expressions, macros such as println!;
 *               Go: x := 1, fmt.Println(x), ...). Anything the splitter cannot make sense of
 *               (unbalanced brackets, stray bytes) ends up a statement, so the compiler says what
 *               is wrong with it.
 *   main        a cell that defines main itself (C/C++ int main(...) {...}, Rust fn main,
 *               Go func main) is compiled as a whole program: its items in the order written,
 *               after the earlier cells' heads and definitions. Its main is not kept; its other
 *               definitions are.
 *   (dropped)   Go's package clause: package main is implied.
 *
 * Replacement: a definition has a key (what it defines: "fn:f", "type:S", "var:x", "define:N",
 * for Go "name:x" as Go has one package scope; an item with no name, such as using namespace
 * std; or impl Trait for T, is keyed by its own text). When a cell that compiled defines a key
 * an earlier cell defined, the new definition takes the place of the earliest earlier one and the
 * other earlier ones are dropped: redefining a function, a type or a global in a later cell
 * works (C and C++: in place, so definitions after it still see it; C++ overloads of one name
 * must therefore be defined in one cell). Within one cell nothing is replaced. Running the same
 * cell twice replaces its own earlier definitions.
 *
 * The program: C/C++: a prelude (<stdio.h>; before main, stdout and stdin made line-buffered, so
 * output shows line by line and a prompt before a read of stdin), the heads,
 * the definitions, then int main() { the statements; return 0; }. Rust: #![allow(unused)], the
 * inner attributes, the definitions, fn main() { the statements }. Go: package main, the imports
 * that the program uses (an import is emitted only when its name appears as `name.` outside
 * strings and comments in the rest of the generated code, so an earlier cell's imports never
 * cause "imported and not used"; blank _ and dot imports always are), the definitions, func
 * main() { the statements }.
 *
 * What persists is therefore code, not values: every cell is a new process, and a global's
 * initializer runs again in every later cell. Statements (C's local variables, Rust's let, Go's
 * x := 1) are gone after their cell: to keep a value visible, make it a global definition. Go:
 * after a statement a, b := ... comes a line _ = a; _ = b, so a name the cell does not use again
 * is not "declared but not used". Limits of the rule: C wants constant initializers for globals
 * (int y = f(); is an error in C, fine in C++).
 *
 * Line numbers: errors name the cell's own lines as cell[K]:LINE, K its execution count. C/C++
 * get a #line N "cell[K]" before every chunk and Go a //line cell[K]:N:1 (each chunk indented as
 * in the cell, so columns match too); Rust has no such directive, so the rendered source keeps a
 * generated line -> (cell, line) map and cs_map_rust_output rewrites rustc's main.rs:L:C
 * references and its "L |" gutter. Glue lines keep their generated numbers.
 *
 * The tokenizer knows comments (Rust's nest), string and character literals (C++ raw strings
 * R"x(...)x" and prefixes, Rust raw strings r#"..."# and byte strings, Rust lifetimes 'a versus
 * char literals, Go backquote strings and runes) and nested brackets. Every input is accepted:
 * NUL bytes, unbalanced brackets, unterminated strings and megabytes of text take linear time.
 */
#ifndef KN_CELLSPLIT_H
#define KN_CELLSPLIT_H
#include <stdbool.h>
#include <stddef.h>

typedef enum { CS_C, CS_CPP, CS_RUST, CS_GO } cs_lang_t;

typedef enum {
    CS_HEAD, /* includes, Rust inner attributes, Go imports: first in the program */
    CS_DEF,  /* a definition: kept */
    CS_STMT, /* a statement: in this cell's main */
    CS_MAIN, /* the cell's own main */
    CS_DROP, /* Go's package clause */
} cs_kind_t;

typedef struct {
    cs_kind_t kind;
    char *key;    /* what it defines (see above); NULL for statements, main and dropped items */
    char *text;   /* the item as written, from its first token (or attribute) to its last */
    char *indent; /* the cell's line before text, as blanks (tabs kept): columns stay right */
    int line;     /* the line of the cell where text starts, from 1 */
    int cell;     /* the execution count of its cell */
} cs_item_t;

typedef struct cs_cell cs_cell_t;
typedef struct cs_program cs_program_t;
typedef struct cs_source cs_source_t;

/* "c", "cpp" (or "c++"), "rust", "go": 0 and *lang, or -1. */
int cs_lang_from_name(const char *name, cs_lang_t *lang);

/* Split code (len bytes, need not be NUL-terminated) of cell number cell_no. Caller owns return
 * value. Never fails. */
cs_cell_t *cs_cell_split(cs_lang_t lang, const char *code, size_t len, int cell_no);
void cs_cell_destroy(cs_cell_t **self_p);
size_t cs_cell_count(const cs_cell_t *self);
const cs_item_t *cs_cell_item(const cs_cell_t *self, size_t i); /* Borrowed */
bool cs_cell_has_main(const cs_cell_t *self);

/* The definitions kept so far (none at first). */
cs_program_t *cs_program_new(cs_lang_t lang);
void cs_program_destroy(cs_program_t **self_p);
/* Keep cell's heads and definitions (copied), replacing earlier ones with the same key. */
void cs_program_commit(cs_program_t *self, const cs_cell_t *cell);
size_t cs_program_count(const cs_program_t *self);
const cs_item_t *cs_program_item(const cs_program_t *self, size_t i); /* Borrowed */

/* The program for running cell after what self keeps (self is not changed). Caller owns return
 * value. */
cs_source_t *cs_render(const cs_program_t *self, const cs_cell_t *cell);
void cs_source_destroy(cs_source_t **self_p);
const char *cs_source_text(const cs_source_t *self); /* Borrowed; NUL-terminated */
size_t cs_source_len(const cs_source_t *self);
/* Where generated line (from 1) came from: *cell and *line, or *cell 0 and *line = gen_line for
 * glue and lines out of range. */
void cs_source_origin(const cs_source_t *self, int gen_line, int *cell, int *line);

/* The name the Rust source must be compiled under for cs_map_rust_output. */
#define CS_RUST_FILE "main.rs"
/* rustc's output (len bytes) with main.rs:L:C references and "L |" gutter numbers rewritten to
 * the cells' lines (cell[K]:L:C). Caller owns return value. */
char *cs_map_rust_output(const cs_source_t *src, const char *out, size_t len);

/* The line of a failed compile's output that says what failed first (gcc/g++ "...: error: ...",
 * or the linker's "undefined reference to", rustc "error...", go's first line that is not a
 * "# package" header), or the first non-empty line. Caller owns return value (never NULL; ""
 * for empty output). */
char *cs_first_error(cs_lang_t lang, const char *out, size_t len);

/* is_complete: "incomplete" when code leaves a bracket, a block comment or a (raw) string open,
 * else "complete". Static string. */
const char *cs_is_complete(cs_lang_t lang, const char *code, size_t len);

#endif
