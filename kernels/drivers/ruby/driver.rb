# driver.rb: the Ruby side of cellblock-kernel's Ruby kernel.
#
# cellblock-kernel (C) speaks Jupyter; this script is the one long-lived Ruby interpreter behind it.
# They talk JSON lines (kernels/drivers/PROTOCOL.md): requests come on fd 3, events go out on fd 4,
# the interpreter's own stdout/stderr (fds 1 and 2) are pipes the kernel forwards as streams.
#
# How it works:
# - Every cell is evaluated with Kernel#eval in one binding, TOPLEVEL_BINDING, under the file name
#   "cell[N]" (N = execution_count) from line 1, so local variables, methods, classes, requires,
#   Dir.chdir and ENV persist from cell to cell, and backtraces and syntax errors name cell lines.
#   Nothing of the driver lives in that binding: this file defines no top-level local variable,
#   everything is inside the Cellblock module.
# - The value of the last expression is the execute_result, as text/plain, via #inspect (irb's
#   `=> value`). nil gives no result: cells that end in `puts ...` or an assignment of nil would
#   otherwise show a `nil` under every printed output, which is noise, not information.
# - Any Exception from a cell, SystemExit (exit, abort) included, is reported as an error event and
#   the driver goes on: user code cannot end the driver short of exit! or a signal.
# - SIGINT: between cells it is ignored (the kernel resends interrupts while a cell runs, and one
#   may land just after the cell ended); during a cell the trap raises Interrupt in the main
#   thread, reported with ename "Interrupt" (Ruby's own name for it); the binding keeps everything
#   defined before the interrupt.
# - stdin is left alone: Ruby 3.1 reads fd 0 (gets, $stdin.read, STDIN.readline...) with a
#   blocking read(2) when fd 0 is a pipe (checked with /proc/<pid>/task/*/syscall while `ruby -e
#   'p gets'` waited on an empty pipe: syscall 0, read, on fd 0), which is what the kernel's core
#   detects to ask the client for a line. So this driver never sends input_request.
# - Display helpers for cells, private methods of Kernel so they work anywhere: display_html(s),
#   display_svg(s), display_markdown(s), display_png(bytes_or_path), display_json(obj), and
#   display_data({mime => data}, metadata = {}) for any other bundle (strings as they are; image/png
#   given as raw bytes is base64-encoded).
# - complete, inspect and is_complete work on the same binding without running user code, except
#   that `name.` completion asks the object that a local variable or constant named `name` holds for
#   its methods.
#
# Every request is attacker-controlled: a malformed line is logged to stderr and skipped; strings
# going out are made valid UTF-8 first (JSON needs it, Ruby strings may be binary).

require "json"

module Cellblock
  # How backtraces name this file: as it was given to ruby, and absolute.
  DRIVER_FILES = [__FILE__, File.expand_path(__FILE__)].uniq.map { |f| f + ":" }.freeze
  MAX_INSPECT = 1 << 20 # inspect_reply text is cut at this many characters

  # Ruby words the completer offers besides names from the binding.
  KEYWORDS = %w[
    BEGIN END alias and begin break case class def defined? do else elsif end ensure false for if
    in module next nil not or redo rescue retry return self super then true undef unless until when
    while yield __method__ __FILE__ __LINE__ __dir__
  ].freeze

  # Messages of syntax errors that mean "the code stops too early", not "the code is wrong".
  EOF_ERRORS = [
    /unexpected end-of-input/,
    /meets end of file/,
    /anywhere before EOF/,
  ].freeze

  # Valid UTF-8 text of any string: binary strings are read as UTF-8, other encodings converted,
  # bad bytes replaced.
  def self.utf8(s)
    s = s.to_s
    if s.encoding == Encoding::BINARY || s.encoding == Encoding::US_ASCII
      s = s.dup.force_encoding(Encoding::UTF_8)
    elsif s.encoding != Encoding::UTF_8
      s = s.encode(Encoding::UTF_8, invalid: :replace, undef: :replace)
    end
    s.valid_encoding? ? s : s.scrub
  end

  # The one writer of fd 4: one line, one write, under a lock (user threads may display too).
  class Events
    def initialize(io)
      @io = io
      @lock = Mutex.new
    end

    def emit(obj)
      line = JSON.generate(obj) + "\n"
      @lock.synchronize do
        # Whatever the cell printed before this event must reach the kernel first.
        $stdout.flush rescue nil
        $stderr.flush rescue nil
        @io.write(line)
      end
    end
  end

  class Driver
    attr_reader :events

    def initialize
      @requests = IO.for_fd(3, "r", autoclose: false)
      @requests.close_on_exec = true # programs the cell starts get neither protocol fd
      ev = IO.for_fd(4, "w", autoclose: false)
      ev.close_on_exec = true
      ev.sync = true
      @events = Events.new(ev)
      @binding = TOPLEVEL_BINDING
      @running = false
      STDOUT.sync = true
      STDERR.sync = true
      # During a cell, raise Interrupt in the main thread (where the trap runs); otherwise drop it.
      trap("INT") { raise Interrupt if @running }
    end

    def run
      @events.emit(ev: "ready", version: RUBY_VERSION)
      while (line = @requests.gets)
        req = begin
          JSON.parse(line)
        rescue JSON::ParserError, EncodingError
          nil
        end
        unless req.is_a?(Hash) && req["op"].is_a?(String)
          warn "cellblock ruby driver: skipping a malformed request"
          next
        end
        handle(req)
      end
    end

    def handle(req)
      case req["op"]
      when "execute" then execute(req)
      when "complete" then @events.emit(complete(str(req["code"]), pos(req)))
      when "inspect" then @events.emit(inspect_at(str(req["code"]), pos(req)))
      when "is_complete" then @events.emit(is_complete(str(req["code"])))
      when "input_reply" then nil # never asked for: stdin is the core's business (see the top)
      else warn "cellblock ruby driver: unknown op #{Cellblock.utf8(req["op"]).inspect}"
      end
    end

    def str(v)
      v.is_a?(String) ? v : ""
    end

    def pos(req)
      code = str(req["code"])
      c = req["cursor_pos"]
      c.is_a?(Integer) && c >= 0 && c <= code.length ? c : code.length
    end

    # --- execute ---------------------------------------------------------------------------------

    def execute(req)
      code = str(req["code"])
      count = req["execution_count"]
      count = 0 unless count.is_a?(Integer)
      begin
        begin
          @running = true
          value = eval(code, @binding, "cell[#{count}]", 1)
        ensure
          @running = false
        end
        unless value.nil? || req["silent"] == true
          @events.emit(ev: "result", data: { "text/plain" => Cellblock.utf8(value.inspect) }, metadata: {})
        end
      rescue Interrupt => e
        report(e, "Interrupt")
      rescue Exception => e # rubocop:disable Lint/RescueException -- everything, exit included
        report(e)
      end
      @events.emit(ev: "done")
    rescue Interrupt
      # Landed between the result or error and done: done is what the kernel still needs.
      @events.emit(ev: "done")
    end

    def report(e, ename = nil)
      ename ||= e.class.name || e.class.inspect
      msg = begin
        e.message
      rescue Exception # a user exception whose #message raises
        "(message unavailable)"
      end
      @events.emit(ev: "error", ename: Cellblock.utf8(ename), evalue: Cellblock.utf8(msg),
                   traceback: traceback(e, ename, msg).map { |l| Cellblock.utf8(l) })
    end

    # Ruby's own report layout: "where: message (Class)" then "\tfrom where" lines. The frames are
    # the cell's and those of library code the cell called; the driver's own (its eval and what
    # calls it, the SIGINT trap, the display helpers) are left out.
    def traceback(e, ename, msg)
      bt = (e.backtrace || []).reject { |l| l.start_with?(*DRIVER_FILES) }
      return ["#{ename}: #{msg}"] if bt.empty? || e.is_a?(SyntaxError)
      ["#{bt[0]}: #{msg} (#{ename})"] + bt.drop(1).map { |l| "\tfrom #{l}" }
    end

    # --- is_complete -----------------------------------------------------------------------------

    def is_complete(code)
      status = syntax_status(code)
      reply = { ev: "is_complete_reply", status: status }
      reply[:indent] = "" if status == "incomplete"
      reply
    end

    def syntax_status(code)
      return "incomplete" if code.rstrip.end_with?("\\") && !code.end_with?("\n\n")
      verbose = $VERBOSE
      $VERBOSE = nil # compile's warnings are not the user's business here
      begin
        RubyVM::InstructionSequence.compile(code)
        "complete"
      rescue SyntaxError => e
        first = e.message.lines.first.to_s
        EOF_ERRORS.any? { |re| re.match?(first) } ? "incomplete" : "invalid"
      ensure
        $VERBOSE = verbose
      end
    rescue StandardError
      "unknown"
    end

    # --- complete --------------------------------------------------------------------------------

    IDENT = /[A-Za-z_][A-Za-z0-9_]*/

    def complete(code, cursor)
      before = code[0, cursor]
      matches = []
      word = ""
      if (m = /(?<recv>@{0,2}#{IDENT}|\$#{IDENT})(?<sep>\.|::)(?<word>#{IDENT}[?!=]?|)\z/o.match(before))
        word = m[:word]
        recv = lookup(m[:recv])
        unless recv.equal?(NONE)
          names = m[:sep] == "::" && recv.is_a?(Module) ? recv.constants + recv.methods : recv.methods
          matches = names.map(&:to_s)
        end
      elsif (m = /(?<word>(?:\$|@{1,2})?#{IDENT}[?!]?|\$|@{1,2})\z/o.match(before))
        word = m[:word]
        matches = top_names(word)
      end
      matches = matches.select { |n| n.start_with?(word) }.uniq.sort
      { ev: "complete_reply", matches: matches.map { |n| Cellblock.utf8(n) },
        cursor_start: cursor - word.length, cursor_end: cursor, metadata: {} }
    rescue StandardError => e
      warn "cellblock ruby driver: complete: #{e.class}"
      { ev: "complete_reply", matches: [], cursor_start: cursor, cursor_end: cursor, metadata: {} }
    end

    def top_names(word)
      main = @binding.receiver
      case word
      when /\A\$/ then global_variables.map(&:to_s)
      when /\A@@/ then []
      when /\A@/ then main.instance_variables.map(&:to_s)
      else
        (@binding.local_variables + main.methods + main.private_methods + Object.constants).map(&:to_s) + KEYWORDS
      end
    end

    NONE = Object.new.freeze

    # The object a plain name stands for, without calling any user method: a local variable, a
    # constant, an instance or global variable of the top level. NONE when it is none of them.
    def lookup(name)
      if name.start_with?("$")
        global_variables.include?(name.to_sym) ? @binding.eval(name) : NONE
      elsif name.start_with?("@@")
        NONE
      elsif name.start_with?("@")
        main = @binding.receiver
        main.instance_variable_defined?(name) ? main.instance_variable_get(name) : NONE
      elsif name.match?(/\A[A-Z]/) # local_variable_defined? raises NameError on a constant name
        Object.const_defined?(name) ? Object.const_get(name) : NONE
      elsif @binding.local_variable_defined?(name)
        @binding.local_variable_get(name)
      else
        NONE
      end
    rescue StandardError, NameError
      NONE
    end

    # --- inspect ---------------------------------------------------------------------------------

    def inspect_at(code, cursor)
      before = code[0, cursor][/[@$]{0,2}#{IDENT}[?!]?\z|[@$]{0,2}#{IDENT}\z/o] || ""
      after = code[cursor..][/\A[A-Za-z0-9_]*[?!]?/] || ""
      name = before + after
      name = name.sub(/[?!]\z/, "") unless name.match?(/\A[A-Za-z_]/)
      text = describe(name)
      return { ev: "inspect_reply", found: false, data: {}, metadata: {} } unless text
      text = text[0, MAX_INSPECT] + "\n…" if text.length > MAX_INSPECT
      { ev: "inspect_reply", found: true, data: { "text/plain" => Cellblock.utf8(text) }, metadata: {} }
    rescue StandardError => e
      warn "cellblock ruby driver: inspect: #{e.class}"
      { ev: "inspect_reply", found: false, data: {}, metadata: {} }
    end

    def describe(name)
      return nil if name.empty?
      obj = lookup(name)
      unless obj.equal?(NONE)
        shown = begin
          obj.inspect
        rescue Exception # rubocop:disable Lint/RescueException -- a user #inspect may do anything
          "(inspect raised)"
        end
        return "#{name}: #{obj.class}\n#{shown}"
      end
      main = @binding.receiver
      if main.respond_to?(name, true)
        meth = main.method(name)
        where = meth.source_location ? " at #{meth.source_location.join(":")}" : ""
        return "#{meth.inspect}#{where}\nparameters: #{meth.parameters.inspect}"
      end
      nil
    rescue NameError
      nil
    end
  end

  # What cells call to show rich output; private Kernel methods, so they work in any scope.
  module Display
    private

    def display_data(data, metadata = {})
      raise TypeError, "display_data wants a Hash of mime type => data" unless data.is_a?(Hash)
      bundle = data.to_h do |mime, value|
        mime = mime.to_s
        if mime == "image/png" && value.is_a?(String) && value.encoding == Encoding::BINARY
          value = [value].pack("m0")
        elsif value.is_a?(String)
          value = Cellblock.utf8(value)
        end
        [Cellblock.utf8(mime), value]
      end
      Cellblock.driver.events.emit(ev: "display", data: bundle, metadata: metadata.to_h)
      nil
    end

    def display_html(s) = display_data({ "text/html" => s.to_s })
    def display_svg(s) = display_data({ "image/svg+xml" => s.to_s })
    def display_markdown(s) = display_data({ "text/markdown" => s.to_s })
    def display_json(obj) = display_data({ "application/json" => JSON.parse(JSON.generate(obj)) })

    # PNG bytes (a string that starts with the PNG signature) or the path of a PNG file.
    def display_png(bytes_or_path)
      s = bytes_or_path.to_s
      bytes = s.b.start_with?("\x89PNG\r\n\x1a\n".b) ? s.b : File.binread(s)
      display_data({ "image/png" => [bytes].pack("m0") })
    end
  end

  class << self
    attr_accessor :driver
  end
end

Kernel.include(Cellblock::Display)
Cellblock.driver = Cellblock::Driver.new
Cellblock.driver.run
