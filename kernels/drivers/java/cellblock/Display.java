/*
 * Display.java: the display helpers of cellblock's Java kernel, as cells see them.
 *
 * CellblockJShell puts this jar on JShell's class path and evaluates `import static
 * cellblock.Display.*;` once at start, so a cell calls display(x), displayHtml("<b>hi</b>") or
 * displayPng(bytes) like any method of its own. They live here, compiled ahead, rather than as
 * JShell snippets because each snippet costs a compile at start; and in a package because cells
 * (package REPL) cannot name a class of the unnamed package, where CellblockJShell has to be.
 * Every helper hands a mime bundle to `sink`, which the driver sets to its event writer (the local
 * execution engine runs cells in the driver's JVM, with this class from the same class loader).
 */
package cellblock;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

public final class Display {
    /** Where bundles go: set by the driver at start. */
    public static volatile Consumer<Map<String, Object>> sink;

    /** JSON text for application/json, checked and embedded by the driver. */
    public static final class JsonText {
        public final String text;

        JsonText(String text) {
            this.text = text;
        }
    }

    private Display() {}

    /** Any mime bundle: String values as they are, byte[] base64-encoded (image/png). */
    public static void displayData(Map<String, ?> bundle) {
        Consumer<Map<String, Object>> s = sink;
        if (s == null) throw new IllegalStateException("cellblock display is unavailable");
        if (bundle == null) throw new NullPointerException("bundle");
        s.accept(new LinkedHashMap<>(bundle));
    }

    public static void display(Object o) {
        displayData(Map.of("text/plain", String.valueOf(o)));
    }

    public static void displayHtml(String html) {
        displayData(Map.of("text/html", String.valueOf(html)));
    }

    public static void displayMarkdown(String markdown) {
        displayData(Map.of("text/markdown", String.valueOf(markdown)));
    }

    public static void displaySvg(String svg) {
        displayData(Map.of("image/svg+xml", String.valueOf(svg)));
    }

    public static void displayLatex(String latex) {
        displayData(Map.of("text/latex", String.valueOf(latex)));
    }

    /** json: JSON text, e.g. "{\"a\": 1}"; IllegalArgumentException when it is not. */
    public static void displayJson(String json) {
        displayData(Map.of("application/json", new JsonText(String.valueOf(json))));
    }

    public static void displayPng(byte[] png) {
        if (png == null) throw new NullPointerException("png");
        displayData(Map.of("image/png", png));
    }

    /** The PNG file at path. */
    public static void displayPng(String path) throws IOException {
        displayPng(Files.readAllBytes(Paths.get(path)));
    }
}
