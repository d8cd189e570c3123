/*
 * CellblockJShell.java: the Java side of cellblock-kernel's Java kernel.
 *
 * cellblock-kernel (C) speaks Jupyter; this program is the one long-lived JVM behind it. They talk
 * JSON lines (kernels/drivers/PROTOCOL.md): requests come on fd 3, events go out on fd 4, the JVM's
 * own stdout and stderr (fds 1 and 2) are pipes the kernel forwards as streams. Java cannot wrap a
 * numbered fd without reflection into java.io, so fds 3 and 4 are opened again through
 * /proc/self/fd (the sandbox mounts /proc); that gives the same pipes.
 *
 * How it works:
 * - One jdk.jshell.JShell with the "local" execution engine: user code runs in this JVM (on a thread
 *   of JShell's own) and its System.out, System.err and System.in are the process's fds 1, 2 and 0.
 *   System.out and System.err are replaced at start by unbuffered UTF-8 PrintStreams, so what a cell
 *   prints is written at once and always before the next event.
 * - A cell is cut into snippets with SourceCodeAnalysis.analyzeCompletion; each is evaluated in
 *   order and the first failure ends the cell. Imports, variables, methods and classes persist (that
 *   is JShell's own state). The last snippet's value, when it is an expression, is the execute_result
 *   (JShell's value string, e.g. "\"abc\"" for a String); declarations show nothing, and so does an
 *   expression the user ended with ';' (`list.add(x);`), as a trailing ';' does in IPython.
 * - Every snippet id is remembered with the cell it came from and the cell line it starts on, so
 *   compile errors ("cell[N]:LINE: error: ...") and stack frames ("at f(cell[N]:LINE)") name cell
 *   lines, also for a method called cells after the one that defined it. Frames below the last cell
 *   frame (JShell's and this driver's machinery) are left out.
 * - SIGINT (sun.misc.Signal): during a cell it calls JShell.stop() and the cell reports an error
 *   with ename "Interrupted"; between cells it is ignored. JShell.stop() stops the cell's thread,
 *   which works for loops and sleeps but not for a thread blocked in a native read (System.in): that
 *   read ends when its line comes (the kernel resends interrupts while a cell runs). A request that
 *   does not allow stdin runs with System.in at end of input, so it never blocks there.
 * - Display helpers: cellblock/Display.java, in this jar, which is put on JShell's class path and
 *   statically imported at start: display(Object) (text/plain), displayHtml(String),
 *   displayMarkdown(String), displaySvg(String), displayLatex(String), displayJson(String json),
 *   displayPng(byte[]), displayPng(String path), displayData(Map<String, ?> bundle). Display.sink
 *   is set to this driver's display(): cells run in this JVM and see the same class.
 * - complete: SourceCodeAnalysis.completionSuggestions on the snippet the cursor is in; inspect:
 *   documentation() plus the type and value of a variable of that name; is_complete:
 *   analyzeCompletion (DEFINITELY_INCOMPLETE or CONSIDERED_INCOMPLETE anywhere: "incomplete").
 * - System.exit() from a cell ends the JVM and so the kernel (the gateway restarts it): JDK 17 has
 *   no hook that can refuse it short of a SecurityManager, which is deprecated and slows every call.
 *
 * Every request is attacker-controlled: a malformed line is logged to stderr and skipped.
 */
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import cellblock.Display;
import jdk.jshell.DeclarationSnippet;
import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.JShell;
import jdk.jshell.JShellException;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;
import jdk.jshell.UnresolvedReferenceException;
import jdk.jshell.VarSnippet;

public class CellblockJShell {
    private static final int MAX_INSPECT = 1 << 20;

    private static OutputStream events;
    private static final Object eventLock = new Object();

    private final JShell js;
    private final SourceCodeAnalysis sca;
    // snippet id -> where it came from: {cell name, cell line of the snippet's first line - 1}
    private final Map<String, Object[]> origins = new HashMap<>();
    private volatile boolean running;
    private volatile boolean interrupted;

    private CellblockJShell(JShell js) {
        this.js = js;
        this.sca = js.sourceCodeAnalysis();
    }

    /** The process's fd 0, which the kernel serves; System.in is this during cells that allow stdin. */
    private static final InputStream STDIN = System.in;

    public static void main(String[] args) throws IOException {
        // Unbuffered UTF-8 streams over fds 1 and 2: output is written as it is printed.
        System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8));
        events = (OutputStream) openFd(4, true);
        BufferedReader requests = new BufferedReader(
            new InputStreamReader((FileInputStream) openFd(3, false), StandardCharsets.UTF_8));

        JShell js = JShell.builder().executionEngine("local").out(System.out).err(System.err).in(System.in)
                        .build();
        CellblockJShell driver = new CellblockJShell(js);
        driver.installInterrupt();
        Display.sink = CellblockJShell::display;
        try {
            js.addToClasspath(Paths.get(CellblockJShell.class.getProtectionDomain().getCodeSource().getLocation().toURI())
                                  .toString());
        } catch (URISyntaxException | RuntimeException e) {
            System.err.println("cellblock java driver: display helpers unavailable: " + e);
        }
        driver.evalQuiet("import static cellblock.Display.*;", "prelude");
        // Warm the compiler and the execution engine on an expression (the first cell's path),
        // then drop it: no $1 left behind.
        for (SnippetEvent e : js.eval("0")) {
            if (e.causeSnippet() == null) js.drop(e.snippet());
        }

        emit(obj("ev", "ready", "version", Runtime.version().toString()));
        String line;
        while ((line = requests.readLine()) != null) {
            Object req;
            try {
                req = Json.parse(line);
            } catch (IllegalArgumentException e) {
                req = null;
            }
            if (!(req instanceof Map) || !(((Map<?, ?>) req).get("op") instanceof String)) {
                System.err.println("cellblock java driver: skipping a malformed request");
                continue;
            }
            driver.handle((Map<?, ?>) req);
        }
        System.exit(0); // fd 3 closed: the kernel is gone; user threads must not keep the JVM alive
    }

    private static Object openFd(int fd, boolean write) throws IOException {
        IOException first = null;
        for (String dir : new String[] {"/proc/self/fd/", "/dev/fd/"}) {
            try {
                return write ? new FileOutputStream(dir + fd) : new FileInputStream(dir + fd);
            } catch (IOException e) {
                if (first == null) first = e;
            }
        }
        throw first;
    }

    private void installInterrupt() {
        try {
            sun.misc.Signal.handle(new sun.misc.Signal("INT"), sig -> {
                if (!running) return; // between cells: ignored
                interrupted = true;
                try {
                    js.stop();
                } catch (RuntimeException e) {
                    System.err.println("cellblock java driver: stop: " + e);
                }
            });
        } catch (IllegalArgumentException e) {
            System.err.println("cellblock java driver: no SIGINT handler: " + e.getMessage());
        }
    }

    private void evalQuiet(String src, String cell) {
        for (SnippetEvent e : js.eval(src)) {
            if (e.causeSnippet() == null) origins.put(e.snippet().id(), new Object[] {cell, 0});
            if (e.status() == Snippet.Status.REJECTED) System.err.println("cellblock java driver: rejected at start: " + src);
        }
    }

    private void handle(Map<?, ?> req) {
        String op = (String) req.get("op");
        String code = req.get("code") instanceof String ? (String) req.get("code") : "";
        try {
            switch (op) {
                case "execute": execute(req, code); break;
                case "complete": emit(complete(code, cursor(req, code))); break;
                case "inspect": emit(inspect(code, cursor(req, code))); break;
                case "is_complete": emit(isComplete(code)); break;
                case "input_reply": break; // never asked for: stdin is the core's business
                default: System.err.println("cellblock java driver: unknown op");
            }
        } catch (RuntimeException e) {
            // JShell failing on odd input must not end the driver, nor leave the kernel waiting.
            System.err.println("cellblock java driver: " + op + ": " + e);
            switch (op) {
                case "execute":
                    emit(error("InternalError", String.valueOf(e), List.of(String.valueOf(e))));
                    emit(obj("ev", "done"));
                    break;
                case "complete":
                    emit(obj("ev", "complete_reply", "matches", List.of(), "cursor_start", 0, "cursor_end", 0,
                             "metadata", Map.of()));
                    break;
                case "inspect":
                    emit(obj("ev", "inspect_reply", "found", false, "data", Map.of(), "metadata", Map.of()));
                    break;
                case "is_complete": emit(obj("ev", "is_complete_reply", "status", "unknown")); break;
                default: break;
            }
        }
    }

    // cursor_pos in code points, as a UTF-16 index into code; out of range means the end.
    private static int cursor(Map<?, ?> req, String code) {
        Object c = req.get("cursor_pos");
        int cps = code.codePointCount(0, code.length());
        if (!(c instanceof Long) || (Long) c < 0 || (Long) c > cps) return code.length();
        return code.offsetByCodePoints(0, (int) (long) (Long) c);
    }

    // --- execute ---------------------------------------------------------------------------------

    private void execute(Map<?, ?> req, String code) {
        long count = req.get("execution_count") instanceof Long ? (Long) req.get("execution_count") : 0;
        String cell = "cell[" + count + "]";
        boolean silent = Boolean.TRUE.equals(req.get("silent"));
        // A request without stdin reads end of input at once: JShell.stop() cannot end a thread
        // blocked in a native read, so an empty pipe would hold the cell until the gateway gives up.
        System.setIn(Boolean.TRUE.equals(req.get("allow_stdin")) ? STDIN : InputStream.nullInputStream());
        String value = null;
        Map<String, Object> failure = null;
        int offset = 0;
        String rest = code;
        interrupted = false;
        running = true;
        try {
            while (failure == null && !interrupted) {
                SourceCodeAnalysis.CompletionInfo ci = sca.analyzeCompletion(rest);
                if (ci.completeness() == SourceCodeAnalysis.Completeness.EMPTY) break;
                boolean complete = ci.completeness().isComplete();
                // Incomplete or unparsable: evaluate the rest as it is, for JShell's error.
                String src = complete ? ci.source() : rest;
                // Leading blank lines are cut: JShell numbers stack frame lines from the first
                // non-blank one (diagnostic positions would still count them).
                int lead = 0;
                while (lead < src.length() && Character.isWhitespace(src.charAt(lead))) lead++;
                int line0 = countLines(code, offset) + countLines(src, lead);
                src = src.substring(lead);
                value = null;
                SnippetEvent main = null;
                for (SnippetEvent e : js.eval(src)) {
                    if (e.causeSnippet() == null && main == null) main = e;
                }
                if (main == null) break;
                Snippet sn = main.snippet();
                origins.put(sn.id(), new Object[] {cell, line0});
                if (interrupted) break;
                if (main.status() == Snippet.Status.REJECTED) {
                    failure = compileError(sn, src, cell, line0);
                } else if (main.exception() != null) {
                    failure = exceptionError(main.exception());
                } else {
                    noteUnresolved(main);
                    boolean expression = sn.kind() == Snippet.Kind.EXPRESSION
                        || sn.subKind() == Snippet.SubKind.TEMP_VAR_EXPRESSION_SUBKIND;
                    // `list.add(x);`: an expression the user ended with ';' shows nothing (as a
                    // trailing ';' does in IPython); `list.add(x)` shows true.
                    boolean quiet = ci.completeness() != SourceCodeAnalysis.Completeness.COMPLETE_WITH_SEMI
                        && src.stripTrailing().endsWith(";");
                    value = expression && !quiet ? main.value() : null;
                }
                if (!complete || ci.remaining().isEmpty()) break;
                offset += rest.length() - ci.remaining().length();
                rest = ci.remaining();
            }
        } finally {
            running = false;
        }
        if (interrupted) {
            emit(error("Interrupted", "interrupted by the user", List.of("Interrupted: the cell was stopped")));
        } else if (failure != null) {
            emit(failure);
        } else if (value != null && !silent) {
            emit(obj("ev", "result", "data", Map.of("text/plain", value), "metadata", Map.of()));
        }
        emit(obj("ev", "done"));
    }

    private static int countLines(String s, int end) {
        int n = 0;
        for (int i = 0; i < end && i < s.length(); i++)
            if (s.charAt(i) == '\n') n++;
        return n;
    }

    private Map<String, Object> compileError(Snippet sn, String src, String cell, int line0) {
        List<String> msgs = new ArrayList<>();
        List<String> tb = new ArrayList<>();
        for (Diag d : js.diagnostics(sn).collect(Collectors.toList())) {
            if (!d.isError()) continue;
            long pos = d.getStartPosition() >= 0 ? d.getStartPosition() : d.getPosition();
            int at = (int) Math.max(0, Math.min(pos, src.length()));
            int line = line0 + countLines(src, at) + 1;
            // javac names JShell's wrapper class ("location: class "): no help to the user
            String text = d.getMessage(Locale.ROOT).replaceAll("\n\\s*location: class\\s*(?=\n|$)", "");
            String msg = cell + ":" + line + ": error: " + text;
            msgs.add(msg);
            tb.add(msg);
            int bol = src.lastIndexOf('\n', at - 1) + 1;
            int eol = src.indexOf('\n', at);
            tb.add(src.substring(bol, eol < 0 ? src.length() : eol));
            tb.add(" ".repeat(at - bol) + "^");
        }
        if (msgs.isEmpty()) {
            String msg = cell + ":" + (line0 + 1) + ": error: this snippet cannot be evaluated";
            msgs.add(msg);
            tb.add(msg);
        }
        return error("CompilationError", String.join("\n", msgs), tb);
    }

    private Map<String, Object> exceptionError(JShellException ex) {
        if (ex instanceof UnresolvedReferenceException) {
            DeclarationSnippet ds = ((UnresolvedReferenceException) ex).getSnippet();
            String msg = ds.name() + " cannot be used until " + String.join(", ",
                js.unresolvedDependencies(ds).collect(Collectors.toList())) + " is declared";
            List<String> tb = new ArrayList<>();
            tb.add("UnresolvedReferenceException: " + msg);
            frames(ex, tb);
            return error("UnresolvedReferenceException", msg, tb);
        }
        String ename = ex instanceof EvalException ? ((EvalException) ex).getExceptionClassName()
                                                   : ex.getClass().getName();
        String msg = ex.getMessage() == null ? "" : ex.getMessage();
        List<String> tb = new ArrayList<>();
        tb.add(msg.isEmpty() ? ename : ename + ": " + msg);
        frames(ex, tb);
        Throwable cause = ex.getCause();
        for (int depth = 0; cause != null && depth < 20; depth++, cause = cause.getCause()) {
            String cn = cause instanceof EvalException ? ((EvalException) cause).getExceptionClassName()
                                                       : cause.getClass().getName();
            tb.add("Caused by: " + cn + (cause.getMessage() == null ? "" : ": " + cause.getMessage()));
            frames(cause, tb);
        }
        return error(ename, msg, tb);
    }

    // The frames of t down to the last one in a cell, cell frames renamed to their cell lines.
    private void frames(Throwable t, List<String> out) {
        StackTraceElement[] st = t.getStackTrace();
        int last = -1;
        for (int i = 0; i < st.length; i++)
            if (origins.containsKey(snippetId(st[i]))) last = i;
        for (int i = 0; i <= last; i++) {
            StackTraceElement f = st[i];
            Object[] o = origins.get(snippetId(f));
            String where = o != null ? o[0] + ":" + ((Integer) o[1] + f.getLineNumber()) : f.getFileName() + ":" + f.getLineNumber();
            String cls = f.getClassName();
            String fn = cls.isEmpty() || cls.startsWith("REPL.") ? f.getMethodName() : cls + "." + f.getMethodName();
            if (fn.isEmpty()) fn = "<cell>"; // the snippet's own statements
            out.add("\tat " + fn + "(" + where + ")");
        }
    }

    private static String snippetId(StackTraceElement f) {
        String file = f.getFileName();
        return file != null && file.startsWith("#") ? file.substring(1) : "";
    }

    // A declaration that refers to what does not exist yet: JShell accepts it; say so, as jshell does.
    private void noteUnresolved(SnippetEvent e) {
        if (e.status() != Snippet.Status.RECOVERABLE_DEFINED && e.status() != Snippet.Status.RECOVERABLE_NOT_DEFINED)
            return;
        if (!(e.snippet() instanceof DeclarationSnippet)) return;
        DeclarationSnippet ds = (DeclarationSnippet) e.snippet();
        List<String> deps = js.unresolvedDependencies(ds).collect(Collectors.toList());
        System.err.println("note: " + ds.name() + " cannot be used until " + String.join(", ", deps) + " is declared");
    }

    private static Map<String, Object> error(String ename, String evalue, List<String> tb) {
        return obj("ev", "error", "ename", ename, "evalue", evalue, "traceback", tb);
    }

    // --- complete / inspect / is_complete --------------------------------------------------------

    // Where the snippet holding position `at` starts: the cell's earlier complete snippets skipped.
    private int snippetStart(String code, int at) {
        String text = code.substring(0, at);
        int offset = 0;
        while (offset < text.length()) {
            SourceCodeAnalysis.CompletionInfo ci = sca.analyzeCompletion(text.substring(offset));
            if (!ci.completeness().isComplete() || ci.remaining().isEmpty()) break;
            offset = text.length() - ci.remaining().length();
        }
        return offset;
    }

    private Map<String, Object> complete(String code, int cursor) {
        int start = snippetStart(code, cursor);
        int[] anchor = new int[1];
        Set<String> matches = new LinkedHashSet<>();
        List<SourceCodeAnalysis.Suggestion> suggestions = sca.completionSuggestions(code.substring(start), cursor - start, anchor);
        for (SourceCodeAnalysis.Suggestion s : suggestions)
            if (s.matchesType()) matches.add(s.continuation());
        for (SourceCodeAnalysis.Suggestion s : suggestions) matches.add(s.continuation());
        int from = Math.max(0, Math.min(start + anchor[0], cursor));
        return obj("ev", "complete_reply", "matches", new ArrayList<>(matches),
                   "cursor_start", code.codePointCount(0, from), "cursor_end", code.codePointCount(0, cursor),
                   "metadata", Map.of());
    }

    private Map<String, Object> inspect(String code, int cursor) {
        int start = snippetStart(code, cursor);
        StringBuilder text = new StringBuilder();
        // the identifier around the cursor, for variables
        int b = cursor, e = cursor;
        while (b > 0 && Character.isJavaIdentifierPart(code.charAt(b - 1))) b--;
        while (e < code.length() && Character.isJavaIdentifierPart(code.charAt(e))) e++;
        String name = code.substring(b, e);
        if (!name.isEmpty()) {
            for (VarSnippet v : js.variables().collect(Collectors.toList())) {
                if (v.name().equals(name) && js.status(v).isActive()) {
                    text.append(v.typeName()).append(' ').append(name).append(" = ").append(js.varValue(v)).append('\n');
                }
            }
        }
        // documentation() describes the call the cursor is in: look as if a '(' followed the name
        String upTo = code.substring(start, e);
        List<SourceCodeAnalysis.Documentation> docs = sca.documentation(upTo + "(", upTo.length() + 1, true);
        if (docs.isEmpty()) docs = sca.documentation(upTo, upTo.length(), true);
        for (SourceCodeAnalysis.Documentation d : docs) {
            text.append(d.signature()).append('\n');
            if (d.javadoc() != null && !d.javadoc().isEmpty()) text.append(d.javadoc()).append('\n');
        }
        if (text.length() == 0) return obj("ev", "inspect_reply", "found", false, "data", Map.of(), "metadata", Map.of());
        String s = text.toString().strip();
        if (s.length() > MAX_INSPECT) s = s.substring(0, MAX_INSPECT) + "\n…";
        return obj("ev", "inspect_reply", "found", true, "data", Map.of("text/plain", s), "metadata", Map.of());
    }

    private Map<String, Object> isComplete(String code) {
        String rest = code;
        while (true) {
            SourceCodeAnalysis.CompletionInfo ci = sca.analyzeCompletion(rest);
            switch (ci.completeness()) {
                case EMPTY:
                    return obj("ev", "is_complete_reply", "status", "complete");
                case DEFINITELY_INCOMPLETE:
                case CONSIDERED_INCOMPLETE:
                    return obj("ev", "is_complete_reply", "status", "incomplete", "indent", "");
                case UNKNOWN:
                    return obj("ev", "is_complete_reply", "status", "invalid");
                default:
                    if (ci.remaining().isEmpty() || ci.remaining().length() >= rest.length())
                        return obj("ev", "is_complete_reply", "status", "complete");
                    rest = ci.remaining();
            }
        }
    }

    // --- events ----------------------------------------------------------------------------------

    // Display.sink: a mime bundle from a cell's display helper.
    private static void display(Map<String, Object> bundle) {
        Map<String, Object> data = new LinkedHashMap<>();
        for (Map.Entry<String, Object> en : bundle.entrySet()) {
            Object v = en.getValue();
            if (v instanceof byte[]) {
                v = Base64.getEncoder().encodeToString((byte[]) v);
            } else if (v instanceof Display.JsonText) { // displayJson: checked, then embedded
                v = Json.parse(((Display.JsonText) v).text);
            } else if (!(v instanceof Map || v instanceof List || v instanceof Number || v instanceof Boolean)) {
                v = String.valueOf(v);
            }
            data.put(String.valueOf(en.getKey()), v);
        }
        emit(obj("ev", "display", "data", data, "metadata", Map.of()));
    }

    private static void emit(Map<String, Object> ev) {
        byte[] line = (Json.write(ev) + "\n").getBytes(StandardCharsets.UTF_8);
        synchronized (eventLock) {
            System.out.flush(); // what the cell printed comes first
            System.err.flush();
            try {
                events.write(line);
            } catch (IOException e) {
                System.exit(1); // fd 4 is gone: so is the kernel
            }
        }
    }

    private static Map<String, Object> obj(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
        return m;
    }

    /** Just enough JSON: objects, arrays, strings, numbers (Long or Double), booleans, null. */
    static final class Json {
        private final String s;
        private int i;
        private int depth;

        private Json(String s) {
            this.s = s;
        }

        static Object parse(String text) {
            Json p = new Json(text);
            Object v = p.value();
            p.ws();
            if (p.i != text.length()) throw new IllegalArgumentException("trailing characters");
            return v;
        }

        private void ws() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
        }

        private IllegalArgumentException bad() {
            return new IllegalArgumentException("bad JSON at " + i);
        }

        private Object value() {
            ws();
            if (i >= s.length()) throw bad();
            char c = s.charAt(i);
            if (c == '{' || c == '[') {
                if (++depth > 512) throw bad();
                Object v = c == '{' ? object() : array();
                depth--;
                return v;
            }
            if (c == '"') return string();
            if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
            if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
            if (s.startsWith("null", i)) { i += 4; return null; }
            return number();
        }

        private Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            i++;
            ws();
            if (i < s.length() && s.charAt(i) == '}') { i++; return m; }
            while (true) {
                ws();
                if (i >= s.length() || s.charAt(i) != '"') throw bad();
                String k = string();
                ws();
                if (i >= s.length() || s.charAt(i++) != ':') throw bad();
                m.put(k, value());
                ws();
                if (i >= s.length()) throw bad();
                char c = s.charAt(i++);
                if (c == '}') return m;
                if (c != ',') throw bad();
            }
        }

        private List<Object> array() {
            List<Object> l = new ArrayList<>();
            i++;
            ws();
            if (i < s.length() && s.charAt(i) == ']') { i++; return l; }
            while (true) {
                l.add(value());
                ws();
                if (i >= s.length()) throw bad();
                char c = s.charAt(i++);
                if (c == ']') return l;
                if (c != ',') throw bad();
            }
        }

        private String string() {
            StringBuilder b = new StringBuilder();
            i++;
            while (true) {
                if (i >= s.length()) throw bad();
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c < 0x20) throw bad();
                if (c != '\\') { b.append(c); continue; }
                if (i >= s.length()) throw bad();
                char e = s.charAt(i++);
                switch (e) {
                    case '"': case '\\': case '/': b.append(e); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'n': b.append('\n'); break;
                    case 'r': b.append('\r'); break;
                    case 't': b.append('\t'); break;
                    case 'u':
                        if (i + 4 > s.length()) throw bad();
                        try {
                            b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        } catch (NumberFormatException x) {
                            throw bad();
                        }
                        i += 4;
                        break;
                    default: throw bad();
                }
            }
        }

        private Object number() {
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            String t = s.substring(start, i);
            if (t.isEmpty()) throw bad();
            try {
                if (t.matches("-?\\d{1,18}")) return Long.parseLong(t);
                return Double.parseDouble(t);
            } catch (NumberFormatException x) {
                throw bad();
            }
        }

        static String write(Object v) {
            StringBuilder b = new StringBuilder();
            write(b, v);
            return b.toString();
        }

        private static void write(StringBuilder b, Object v) {
            if (v == null) {
                b.append("null");
            } else if (v instanceof String) {
                quote(b, (String) v);
            } else if (v instanceof Boolean || v instanceof Long || v instanceof Integer) {
                b.append(v);
            } else if (v instanceof Number) {
                double d = ((Number) v).doubleValue();
                b.append(Double.isFinite(d) ? String.valueOf(v) : "null");
            } else if (v instanceof Map) {
                b.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                    if (!first) b.append(',');
                    first = false;
                    quote(b, String.valueOf(e.getKey()));
                    b.append(':');
                    write(b, e.getValue());
                }
                b.append('}');
            } else if (v instanceof List) {
                b.append('[');
                boolean first = true;
                for (Object o : (List<?>) v) {
                    if (!first) b.append(',');
                    first = false;
                    write(b, o);
                }
                b.append(']');
            } else {
                quote(b, String.valueOf(v));
            }
        }

        // JSON string of s; lone surrogates (not UTF-16) become U+FFFD.
        private static void quote(StringBuilder b, String s) {
            b.append('"');
            for (int k = 0; k < s.length(); k++) {
                char c = s.charAt(k);
                if (c == '"' || c == '\\') {
                    b.append('\\').append(c);
                } else if (c == '\n') {
                    b.append("\\n");
                } else if (c == '\r') {
                    b.append("\\r");
                } else if (c == '\t') {
                    b.append("\\t");
                } else if (c < 0x20 || c == 0x2028 || c == 0x2029) {
                    b.append(String.format("\\u%04x", (int) c));
                } else if (Character.isHighSurrogate(c) && k + 1 < s.length() && Character.isLowSurrogate(s.charAt(k + 1))) {
                    b.append(c).append(s.charAt(++k));
                } else if (Character.isSurrogate(c)) {
                    b.append('\uFFFD');
                } else {
                    b.append(c);
                }
            }
            b.append('"');
        }
    }
}
