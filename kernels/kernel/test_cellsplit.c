/* kernels/kernel/test_cellsplit.c: unit test of cellsplit (TAP).
 *
 * A table of items per language and what each must become (statement, definition with its key,
 * head, main); replacement of redefinitions across cells; the rendered program's line map and
 * its line directives; Go import pruning; rustc output rewriting; is_complete; and malformed
 * input (random bytes, every truncation of the samples) that must split without crashing or
 * looping (run it under -DCB_SANITIZE=address,undefined to see memory errors).
 */
#include <stdlib.h>
#include <string.h>

#include "cb/tap.h"
#include "cellsplit.h"

typedef struct {
    cs_lang_t lang;
    const char *code;
    cs_kind_t kind;
    const char *key; /* NULL: no key expected (or any, for text keys: "text:") */
} s_case_t;

static const s_case_t s_cases[] = {
    /* C */
    {CS_C, "#include <stdio.h>", CS_HEAD, "text:#include <stdio.h>"},
    {CS_C, "#define SQ(x) \\\n  ((x) * (x))", CS_DEF, "define:SQ"},
    {CS_C, "int add(int a, int b) { return a + b; }", CS_DEF, "fn:add"},
    {CS_C, "static const char *name = \"x;{\";", CS_DEF, "var:name"},
    {CS_C, "int x = 5;", CS_DEF, "var:x"},
    {CS_C, "int f(int);", CS_DEF, "proto:f"},
    {CS_C, "struct point { int x, y; };", CS_DEF, "type:point"},
    {CS_C, "typedef struct { int a; } pair_t;", CS_DEF, "type:pair_t"},
    {CS_C, "enum color { RED, GREEN };", CS_DEF, "type:color"},
    {CS_C, "struct point p;", CS_DEF, "var:p"},
    {CS_C, "unsigned long long big[10];", CS_DEF, "var:big"},
    {CS_C, "printf(\"%d\\n\", x);", CS_STMT, NULL},
    {CS_C, "x = 3;", CS_STMT, NULL},
    {CS_C, "x++;", CS_STMT, NULL},
    {CS_C, "*p = 3;", CS_STMT, NULL},
    {CS_C, "a.b = 1;", CS_STMT, NULL},
    {CS_C, "p->b = 1;", CS_STMT, NULL},
    {CS_C, "a < b;", CS_STMT, NULL},
    {CS_C, "for (int i = 0; i < 3; i++) { printf(\"%d\", i); }", CS_STMT, NULL},
    {CS_C, "if (x) { y(); } else { z(); }", CS_STMT, NULL},
    {CS_C, "do { x--; } while (x > 0);", CS_STMT, NULL},
    {CS_C, "return 0;", CS_STMT, NULL},
    {CS_C, "{ int local = 1; }", CS_STMT, NULL},
    {CS_C, "int main(void) { return 0; }", CS_MAIN, NULL},
    {CS_C, "int main(int argc, char **argv)\n{\n  return 0;\n}", CS_MAIN, NULL},
    /* C++ */
    {CS_CPP, "#include <iostream>", CS_HEAD, "text:#include <iostream>"},
    {CS_CPP, "using namespace std;", CS_DEF, "text:using namespace std ;"},
    {CS_CPP, "using vec = std::vector<int>;", CS_DEF, "type:vec"},
    {CS_CPP, "std::vector<int> v;", CS_DEF, "var:v"},
    {CS_CPP, "std::vector<std::vector<int>> grid{{1}};", CS_DEF, "var:grid"},
    {CS_CPP, "std::map<std::string, int> m = {{\"a\", 1}};", CS_DEF, "var:m"},
    {CS_CPP, "std::cout << x << std::endl;", CS_STMT, NULL},
    {CS_CPP, "class Foo : public Bar { public: int x; void f() {} };", CS_DEF, "type:Foo"},
    {CS_CPP, "template <typename T> T twice(T x) { return x * 2; }", CS_DEF, "fn:twice"},
    {CS_CPP, "template <class T> struct Box { T v; };", CS_DEF, "type:Box"},
    {CS_CPP, "namespace util { int one() { return 1; } }", CS_DEF, NULL},
    {CS_CPP, "void Foo::g() const { }", CS_DEF, "fn:Foo::g"},
    {CS_CPP, "Foo::Foo() : x(1) { }", CS_DEF, "fn:Foo::Foo"},
    {CS_CPP, "bool operator==(const P &a, const P &b) { return a.x == b.x; }", CS_DEF,
     "fn:operator=="},
    {CS_CPP, "auto sq = [](int v) { return v * v; };", CS_DEF, "var:sq"},
    {CS_CPP, "const char *s = R\"x(a \"quoted\" ; { string)x\";", CS_DEF, "var:s"},
    {CS_CPP, "long n = 1'000'000;", CS_DEF, "var:n"},
    {CS_CPP, "enum class Dir : int { Up, Down };", CS_DEF, "type:Dir"},
    {CS_CPP, "try { f(); } catch (...) { }", CS_STMT, NULL},
    {CS_CPP, "delete p;", CS_STMT, NULL},
    {CS_CPP, "v.push_back(3);", CS_STMT, NULL},
    {CS_CPP, "[[nodiscard]] int h() { return 1; }", CS_DEF, "fn:h"},
    {CS_CPP, "extern \"C\" { int c_fn(void); }", CS_DEF, NULL},
    /* Rust */
    {CS_RUST, "use std::collections::HashMap;", CS_DEF, "text:use std :: collections :: HashMap ;"},
    {CS_RUST, "fn add(a: i32, b: i32) -> i32 { a + b }", CS_DEF, "value:add"},
    {CS_RUST, "pub(crate) async fn go() {}", CS_DEF, "value:go"},
    {CS_RUST, "#[derive(Debug, Clone)]\nstruct P { x: i32 }", CS_DEF, "type:P"},
    {CS_RUST, "struct Unit;", CS_DEF, "type:Unit"},
    {CS_RUST, "struct T(i32, String);", CS_DEF, "type:T"},
    {CS_RUST, "enum E { A, B(i32) }", CS_DEF, "type:E"},
    {CS_RUST, "impl<'a> Trait for Holder<'a> { fn f(&self) -> char { 'x' } }", CS_DEF,
     "impl:impl < 'a > Trait for Holder < 'a >"},
    {CS_RUST, "const N: usize = 10;", CS_DEF, "value:N"},
    {CS_RUST, "static mut COUNT: u32 = 0;", CS_DEF, "value:COUNT"},
    {CS_RUST, "const ORIGIN: P = P { x: 0 };", CS_DEF, "value:ORIGIN"},
    {CS_RUST, "type Map = HashMap<String, i32>;", CS_DEF, "type:Map"},
    {CS_RUST, "macro_rules! sq { ($x:expr) => { $x * $x }; }", CS_DEF, "macro:sq"},
    {CS_RUST, "mod inner { pub fn f() {} }", CS_DEF, "type:inner"},
    {CS_RUST, "trait Shape { fn area(&self) -> f64; }", CS_DEF, "type:Shape"},
    {CS_RUST, "unsafe fn raw() {}", CS_DEF, "value:raw"},
    {CS_RUST, "let x = 5;", CS_STMT, NULL},
    {CS_RUST, "println!(\"{} }}\", r#\"raw \" ; }\"#);", CS_STMT, NULL},
    {CS_RUST, "if x > 1 { a(); } else { b(); }", CS_STMT, NULL},
    {CS_RUST, "let c = '}';", CS_STMT, NULL},
    {CS_RUST, "fn main() { println!(\"hi\"); }", CS_MAIN, NULL},
    {CS_RUST, "#![allow(dead_code)]", CS_HEAD, "text:# ! [ allow ( dead_code ) ]"},
    /* Go */
    {CS_GO, "package main", CS_DROP, NULL},
    {CS_GO, "import \"fmt\"", CS_HEAD, "import:fmt"},
    {CS_GO, "import str \"strings\"", CS_HEAD, "import:str"},
    {CS_GO, "import \"math/rand\"", CS_HEAD, "import:rand"},
    {CS_GO, "func add(a, b int) int {\n\treturn a + b\n}", CS_DEF, "name:add"},
    {CS_GO, "func (p *Point) Len() float64 {\n\treturn 0\n}", CS_DEF, "method:Point.Len"},
    {CS_GO, "type Point struct {\n\tX, Y int\n}", CS_DEF, "name:Point"},
    {CS_GO, "var counter = 10", CS_DEF, "name:counter"},
    {CS_GO, "const Pi = 3.14", CS_DEF, "name:Pi"},
    {CS_GO, "var (\n\ta = 1\n\tb = 2\n)", CS_DEF, NULL},
    {CS_GO, "x := `raw\n}`", CS_STMT, NULL},
    {CS_GO, "fmt.Println(\"hi\")", CS_STMT, NULL},
    {CS_GO, "for i := 0; i < 3; i++ {\n\tfmt.Println(i)\n}", CS_STMT, NULL},
    {CS_GO, "if x {\n} else {\n}", CS_STMT, NULL},
    {CS_GO, "func main() {\n}", CS_MAIN, NULL},
};

static const char *s_kind_name(cs_kind_t k)
{
    static const char *names[] = {"head", "def", "stmt", "main", "drop"};
    return (unsigned)k < 5 ? names[k] : "?";
}

static void s_test_table(void)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof *s_cases; i++) {
        const s_case_t *c = &s_cases[i];
        cs_cell_t *cell = cs_cell_split(c->lang, c->code, strlen(c->code), 1);
        char name[200];
        snprintf(name, sizeof name, "one item: %.60s", c->code);
        if (!CB_EQ_SIZE(cs_cell_count(cell), 1, name)) {
            for (size_t j = 0; j < cs_cell_count(cell); j++)
                CB_DIAG("item %zu: %s [%s]", j, cs_cell_item(cell, j)->text,
                        s_kind_name(cs_cell_item(cell, j)->kind));
            cs_cell_destroy(&cell);
            continue;
        }
        const cs_item_t *it = cs_cell_item(cell, 0);
        snprintf(name, sizeof name, "%s: %.60s", s_kind_name(c->kind), c->code);
        CB_EQ_STR(s_kind_name(it->kind), s_kind_name(c->kind), name);
        if (c->key) {
            snprintf(name, sizeof name, "key %s", c->key);
            CB_EQ_STR(it->key, c->key, name);
        }
        if (!(c->lang == CS_GO && c->kind == CS_HEAD)) /* an import's text is its spec */
            CB_EQ_STR(it->text, c->code, "text kept as written");
        cs_cell_destroy(&cell);
    }
}

/* The kinds of a cell's items, as "def stmt ...". */
static char *s_kinds(const cs_cell_t *cell)
{
    static char buf[512];
    buf[0] = '\0';
    for (size_t i = 0; i < cs_cell_count(cell); i++) {
        if (i)
            strncat(buf, " ", sizeof buf - strlen(buf) - 1);
        strncat(buf, s_kind_name(cs_cell_item(cell, i)->kind), sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

static void s_test_cells(void)
{
    const char *c_cell = "#include <math.h>\n"
                         "// a comment ; {\n"
                         "double r = 2.0;\n"
                         "double area(double x) {\n"
                         "    return 3.14 * x * x;\n"
                         "}\n"
                         "printf(\"%f\\n\", area(r));\n"
                         "r = 3;\n";
    cs_cell_t *cell = cs_cell_split(CS_C, c_cell, strlen(c_cell), 4);
    CB_EQ_STR(s_kinds(cell), "head def def stmt stmt", "C cell: items");
    CB_EQ_INT(cs_cell_item(cell, 2)->line, 4, "C cell: the function starts on line 4");
    CB_EQ_INT(cs_cell_item(cell, 4)->line, 8, "C cell: the last statement on line 8");
    CB_EQ_INT(cs_cell_item(cell, 4)->cell, 4, "C cell: items know their cell");
    cs_cell_destroy(&cell);

    const char *go_cell = "package main\n"
                          "import (\n"
                          "\t\"fmt\"\n"
                          "\tstr \"strings\"\n"
                          ")\n"
                          "func f() int { return 1 }\n"
                          "x := f() +\n"
                          "\t2\n"
                          "fmt.Println(x, str.ToUpper(\"a\"))\n";
    cell = cs_cell_split(CS_GO, go_cell, strlen(go_cell), 1);
    CB_EQ_STR(s_kinds(cell), "drop head head def stmt stmt", "Go cell: items");
    if (cs_cell_count(cell) == 6) {
        CB_EQ_STR(cs_cell_item(cell, 2)->text, "str \"strings\"", "Go: grouped import spec");
        CB_EQ_INT(cs_cell_item(cell, 2)->line, 4, "Go: the spec's line");
        CB_EQ_STR(cs_cell_item(cell, 4)->text, "x := f() +\n\t2", "Go: a continued line");
    }
    cs_cell_destroy(&cell);

    const char *rs_cell = "#[derive(Debug)]\n"
                          "struct P { x: i32 }\n"
                          "let p = P { x: 1 };\n"
                          "/* nested /* comment */ fn no() {} */\n"
                          "println!(\"{:?}\", p);\n"
                          "fn helper<'a>(s: &'a str) -> &'a str { s }\n";
    cell = cs_cell_split(CS_RUST, rs_cell, strlen(rs_cell), 1);
    CB_EQ_STR(s_kinds(cell), "def stmt stmt def", "Rust cell: items");
    if (cs_cell_count(cell) == 4)
        CB_EQ_STR(cs_cell_item(cell, 1)->text, "let p = P { x: 1 };", "Rust: a let keeps its ;");
    cs_cell_destroy(&cell);
}

/* Does the rendered text of cell over prog contain needle? */
static bool s_renders(const cs_program_t *prog, const cs_cell_t *cell, const char *needle)
{
    cs_source_t *src = cs_render(prog, cell);
    bool found = strstr(cs_source_text(src), needle) != NULL;
    if (!found)
        CB_DIAG("rendered:\n%s", cs_source_text(src));
    cs_source_destroy(&src);
    return found;
}

static size_t s_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void s_test_replace(void)
{
    cs_program_t *prog = cs_program_new(CS_C);
    const char *c1 = "#include <stdio.h>\nint f(void) { return 1; }\nint g = 7;\nint h(void) { "
                     "return f(); }\n";
    const char *c2 = "#include <stdio.h>\nint f(void) { return 2; }\nprintf(\"%d\", h());\n";
    cs_cell_t *cell1 = cs_cell_split(CS_C, c1, strlen(c1), 1);
    cs_program_commit(prog, cell1);
    CB_EQ_SIZE(cs_program_count(prog), 4, "commit keeps the include and three definitions");
    cs_cell_t *cell2 = cs_cell_split(CS_C, c2, strlen(c2), 2);
    cs_source_t *src = cs_render(prog, cell2);
    const char *text = cs_source_text(src);
    CB_EQ_SIZE(s_count(text, "int f(void)"), 1, "render: f once, the new one");
    CB_OK(strstr(text, "return 2") && !strstr(text, "return 1"), "render: the new body");
    const char *fpos = strstr(text, "return 2"), *hpos = strstr(text, "return f()");
    CB_OK(fpos && hpos && fpos < hpos, "render: f replaced in place, before h");
    CB_EQ_SIZE(s_count(text, "#include <stdio.h>\n#line"), 1, "render: the include once");
    CB_OK(strstr(text, "#line 3 \"cell[2]\"\nprintf"), "render: a statement's line directive");
    CB_OK(strstr(text, "#line 2 \"cell[2]\"\nint f"), "render: a definition's line directive");
    /* the map: the line of printf is cell 2 line 3 */
    int gen = 1;
    for (const char *p = text; p < strstr(text, "printf(\"%d\""); p++)
        gen += *p == '\n';
    int c, l;
    cs_source_origin(src, gen, &c, &l);
    CB_OK(c == 2 && l == 3, "map: printf's generated line %d is cell %d line %d", gen, c, l);
    cs_source_origin(src, 1, &c, &l);
    CB_OK(c == 0 && l == 1, "map: the prelude is glue");
    cs_source_destroy(&src);
    cs_program_commit(prog, cell2);
    CB_EQ_SIZE(cs_program_count(prog), 4, "commit: f replaced, statements not kept");
    CB_EQ_INT(cs_program_item(prog, 1)->cell, 2, "commit: the new f in the old place");
    /* the same cell twice */
    cs_program_commit(prog, cell2);
    CB_EQ_SIZE(cs_program_count(prog), 4, "commit: a cell run twice keeps one copy");
    cs_cell_destroy(&cell1);
    cs_cell_destroy(&cell2);

    /* a cell with its own main: whole program, main not kept */
    const char *c3 = "int k = 1;\nint main(void) { return k; }\n";
    cs_cell_t *cell3 = cs_cell_split(CS_C, c3, strlen(c3), 3);
    CB_OK(cs_cell_has_main(cell3), "main: detected");
    CB_OK(s_renders(prog, cell3, "int main(void) { return k; }"), "main: the cell's own");
    src = cs_render(prog, cell3);
    CB_EQ_SIZE(s_count(cs_source_text(src), "int main"), 1, "main: only one");
    cs_source_destroy(&src);
    cs_program_commit(prog, cell3);
    CB_EQ_SIZE(cs_program_count(prog), 5, "main: its other definitions kept, not main");
    cs_cell_destroy(&cell3);
    cs_program_destroy(&prog);
}

static void s_test_go_imports(void)
{
    cs_program_t *prog = cs_program_new(CS_GO);
    const char *g1 = "import (\n\t\"fmt\"\n\t\"strings\"\n)\nfmt.Println(strings.ToUpper(\"a\"))\n";
    cs_cell_t *cell1 = cs_cell_split(CS_GO, g1, strlen(g1), 1);
    CB_OK(s_renders(prog, cell1, "import \"strings\""), "go: a used import is emitted");
    cs_program_commit(prog, cell1);
    const char *g2 = "fmt.Println(\"strings.\") // strings.X\n";
    cs_cell_t *cell2 = cs_cell_split(CS_GO, g2, strlen(g2), 2);
    cs_source_t *src = cs_render(prog, cell2);
    CB_OK(strstr(cs_source_text(src), "import \"fmt\""), "go: an earlier cell's import used");
    CB_OK(!strstr(cs_source_text(src), "\"strings\""),
          "go: an import named only in strings and comments is left out");
    CB_OK(strstr(cs_source_text(src), "//line cell[2]:1:1\nfmt.Println"), "go: line directive");
    CB_OK(strncmp(cs_source_text(src), "package main\n", 13) == 0, "go: package main first");
    cs_source_destroy(&src);
    const char *g3 = "type T struct{ fmt int }\nvar t T\nt.fmt = 1\n";
    cs_cell_t *cell3 = cs_cell_split(CS_GO, g3, strlen(g3), 3);
    src = cs_render(prog, cell3);
    CB_OK(!strstr(cs_source_text(src), "\"fmt\""), "go: a field named fmt is not the package");
    cs_source_destroy(&src);
    const char *g4 = "a, _, err := 1, 2, 3\nfor i := 0; i < 1; i++ {\n}\n";
    cs_cell_t *cell4 = cs_cell_split(CS_GO, g4, strlen(g4), 4);
    src = cs_render(prog, cell4);
    CB_OK(strstr(cs_source_text(src), "a, _, err := 1, 2, 3\n_ = a; _ = err; \n"),
          "go: names a statement declares are marked used");
    CB_EQ_SIZE(s_count(cs_source_text(src), "_ = "), 2, "go: only those");
    cs_source_destroy(&src);
    cs_cell_destroy(&cell1);
    cs_cell_destroy(&cell2);
    cs_cell_destroy(&cell3);
    cs_cell_destroy(&cell4);
    cs_program_destroy(&prog);
}

static void s_test_rust_map(void)
{
    cs_program_t *prog = cs_program_new(CS_RUST);
    const char *r1 = "fn one() -> i32 { 1 }\n";
    cs_cell_t *cell1 = cs_cell_split(CS_RUST, r1, strlen(r1), 1);
    cs_program_commit(prog, cell1);
    const char *r2 = "let a = one();\n\nprintln!(\"{}\", b);\n";
    cs_cell_t *cell2 = cs_cell_split(CS_RUST, r2, strlen(r2), 7);
    cs_source_t *src = cs_render(prog, cell2);
    const char *text = cs_source_text(src);
    int gen = 1;
    const char *at = strstr(text, "println!");
    for (const char *p = text; at && p < at; p++)
        gen += *p == '\n';
    char out[512];
    snprintf(out, sizeof out,
             "error[E0425]: cannot find value `b` in this scope\n"
             " --> main.rs:%d:20\n"
             "  |\n"
             "%d |     println!(\"{}\", b);\n"
             "  |                    ^ not found\n",
             gen, gen);
    char *mapped = cs_map_rust_output(src, out, strlen(out));
    CB_OK(strstr(mapped, " --> cell[7]:3:20\n"), "rust: --> rewritten");
    CB_OK(strstr(mapped, "\n3 |     println!"), "rust: gutter rewritten");
    CB_OK(strstr(mapped, "  |                    ^ not found\n"), "rust: other lines kept");
    free(mapped);
    const char *glue = " --> main.rs:1:1\n";
    mapped = cs_map_rust_output(src, glue, strlen(glue));
    CB_EQ_STR(mapped, glue, "rust: a glue line keeps its generated number");
    free(mapped);
    char *first = cs_first_error(CS_RUST, out, strlen(out));
    CB_EQ_STR(first, "error[E0425]: cannot find value `b` in this scope", "rust: first error");
    free(first);
    cs_source_destroy(&src);
    cs_cell_destroy(&cell1);
    cs_cell_destroy(&cell2);
    cs_program_destroy(&prog);

    const char *gcc = "cell[2]: In function 'main':\ncell[2]:3:5: error: 'y' undeclared\n";
    first = cs_first_error(CS_C, gcc, strlen(gcc));
    CB_EQ_STR(first, "cell[2]:3:5: error: 'y' undeclared", "c: first error");
    free(first);
    const char *ld = "/usr/bin/ld: /tmp/x.o: in function `main':\ncell[3]:2: undefined reference "
                     "to `nope'\ncollect2: error: ld returned 1 exit status\n";
    first = cs_first_error(CS_C, ld, strlen(ld));
    CB_EQ_STR(first, "cell[3]:2: undefined reference to `nope'", "c: the linker's error");
    free(first);
    const char *gos = "# command-line-arguments\ncell[1]:2:2: undefined: y\n";
    first = cs_first_error(CS_GO, gos, strlen(gos));
    CB_EQ_STR(first, "cell[1]:2:2: undefined: y", "go: first error");
    free(first);
}

static void s_test_is_complete(void)
{
    static const struct {
        cs_lang_t lang;
        const char *code, *want;
    } cases[] = {
        {CS_C, "int f() {", "incomplete"},         {CS_C, "int f() { return 1; }", "complete"},
        {CS_C, "/* open", "incomplete"},           {CS_C, "printf(\"(\");", "complete"},
        {CS_CPP, "auto s = R\"(", "incomplete"},   {CS_RUST, "fn f() { let c = '{'; }", "complete"},
        {CS_RUST, "let s = \"open", "incomplete"}, {CS_GO, "x := `open", "incomplete"},
        {CS_GO, "func f() {\n", "incomplete"},     {CS_GO, "}", "complete"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[120];
        snprintf(name, sizeof name, "is_complete: %s", cases[i].code);
        CB_EQ_STR(cs_is_complete(cases[i].lang, cases[i].code, strlen(cases[i].code)),
                  cases[i].want, name);
    }
}

/* Split, render, map: whatever the input, this must return. */
static size_t s_churn(cs_lang_t lang, cs_program_t *prog, const char *code, size_t len, int no)
{
    cs_cell_t *cell = cs_cell_split(lang, code, len, no);
    cs_source_t *src = cs_render(prog, cell);
    char *mapped = cs_map_rust_output(src, code, len);
    char *first = cs_first_error(lang, code, len);
    cs_is_complete(lang, code, len);
    size_t n = cs_cell_count(cell);
    cs_program_commit(prog, cell);
    free(first);
    free(mapped);
    cs_source_destroy(&src);
    cs_cell_destroy(&cell);
    return n;
}

static void s_test_malformed(void)
{
    static const char alphabet[] = "{}()[]<>;:=,.*&#\"'`/\\\n \tR r#abc0123\x00\xc3\xa9xz!";
    unsigned seed = 12345;
    int churned = 0;
    for (cs_lang_t lang = CS_C; lang <= CS_GO; lang++) {
        cs_program_t *prog = cs_program_new(lang);
        char buf[400];
        for (int round = 0; round < 400; round++) {
            size_t len = (size_t)(rand_r(&seed) % sizeof buf);
            for (size_t i = 0; i < len; i++)
                buf[i] = (round & 1) ? (char)rand_r(&seed)
                                     : alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
            s_churn(lang, prog, buf, len, round + 1);
            churned++;
        }
        /* samples of the language spliced at random places */
        for (int round = 0; round < 300; round++) {
            size_t len = 0;
            for (int piece = 0; piece < 6; piece++) {
                const s_case_t *c = &s_cases[rand_r(&seed) % (sizeof s_cases / sizeof *s_cases)];
                size_t n = strlen(c->code);
                size_t from = (size_t)rand_r(&seed) % (n + 1);
                size_t take = (size_t)rand_r(&seed) % (n - from + 1);
                if (len + take > sizeof buf)
                    break;
                memcpy(buf + len, c->code + from, take);
                len += take;
            }
            s_churn(lang, prog, buf, len, round + 1000);
            churned++;
        }
        /* every truncation of the samples */
        for (size_t i = 0; i < sizeof s_cases / sizeof *s_cases; i++) {
            if (s_cases[i].lang != lang)
                continue;
            size_t n = strlen(s_cases[i].code);
            for (size_t cut = 0; cut <= n; cut++, churned++)
                s_churn(lang, prog, s_cases[i].code, cut, 500);
        }
        cs_program_destroy(&prog);
    }
    CB_OK(churned > 3000, "malformed: %d random and truncated cells split", churned);

    /* a megabyte: unbalanced braces, and many definitions (linear time) */
    size_t big = 1 << 20;
    char *text = malloc(big);
    memset(text, '{', big);
    cs_program_t *prog = cs_program_new(CS_C);
    CB_EQ_SIZE(s_churn(CS_C, prog, text, big, 1), 1, "a megabyte of { is one statement");
    CB_EQ_STR(cs_is_complete(CS_C, text, big), "incomplete", "a megabyte of { is incomplete");
    for (size_t i = 0; i + 8 <= big; i += 8) {
        memcpy(text + i, "int ab;\n", 8);
        text[i + 4] = (char)('a' + (i / 8) % 26);
        text[i + 5] = (char)('a' + (i / 208) % 26);
    }
    size_t n = s_churn(CS_C, prog, text, big, 2);
    CB_EQ_SIZE(n, big / 8, "a megabyte of declarations");
    n = s_churn(CS_C, prog, text, big, 3);
    CB_EQ_SIZE(cs_program_count(prog), big / 8, "the same megabyte again replaces it");
    cs_program_destroy(&prog);
    free(text);
}

int main(void)
{
    s_test_table();
    s_test_cells();
    s_test_replace();
    s_test_go_imports();
    s_test_rust_map();
    s_test_is_complete();
    s_test_malformed();
    return cb_tap_done();
}
