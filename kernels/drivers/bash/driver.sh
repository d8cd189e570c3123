#!/bin/bash
# kernels/drivers/bash/driver.sh: the Bash kernel's interpreter side (kernels/drivers/PROTOCOL.md).
#
# One live bash runs this script. Requests come as JSON lines on fd 3, events go back on fd 4.
# Each cell's code is written to a file and `source`d at the top level of this script (never
# inside a function: `declare` there would make locals), so variables, functions, aliases, the
# working directory and the environment persist from cell to cell. A cell that does not parse
# (__cb_parses) is an error and does not run; so is a cell whose last command exits with a non-zero
# status (ExitCode, as bash_kernel has it: `ls /nope` fails the cell), after its output.
#
# Interrupts: between cells SIGINT is ignored. During a cell the INT trap sets a flag and turns on
# a DEBUG trap (with extdebug) that unwinds: every next command inside the cell's functions and
# the sourced file returns at once (DEBUG trap status 2), until control is back here; the cell
# then reports ename "Interrupted". Nothing defined so far is lost.
#
# JSON is read and written here without jq or python: in a request a string's only escapes are
# \" \\ \/ \b \f \n \r \t \uXXXX (a UTF-16 surrogate pair is not joined: the kernel writes
# UTF-8 as is, and escapes only control characters). Escaped backslashes and quotes are
# first swapped for bytes that cannot occur raw in JSON (\x01, \x02), after which every '"' is
# structural and a field is cut out with parameter expansion; printf %b then decodes the rest.
#
# stdin is the kernel's served pipe in every cell: when a cell reads it, the kernel asks the client
# for a line, or (allow_stdin false) reports StdinNotImplementedError and interrupts the cell.
#
# The names of this driver start with __cb_ so that cells rarely meet them.

shopt -s extglob # for the JSON patterns below (bash's interactive users have it on anyway)
exec {__cb_req}<&3 {__cb_ev}>&4 3<&- 4>&- # the channels, away from fds a cell may use
__cb_dir=$(mktemp -d "${TMPDIR:-/tmp}/cellblock-bash-XXXXXX") || exit 1
__cb_cell=$__cb_dir/cell
trap 'rm -rf -- "$__cb_dir"' EXIT
trap '' INT

# ---- JSON -----------------------------------------------------------------------------------

# Swap the escaped backslashes and quotes of $__cb_line for \x01 and \x02 (bytewise: in a UTF-8
# locale bash's substitutions are far slower).
__cb_swap() {
    local LC_ALL=C
    __cb_line=${__cb_line//\\\\/$'\x01'}
    __cb_line=${__cb_line//\\\"/$'\x02'}
}

# __cb_raw KEY: the raw JSON text of KEY's value in $__cb_line (swapped form) into __cb_v.
# Whitespace around ':' and ',' is allowed (json.dumps writes it); nested objects are not.
__cb_raw() {
    local LC_ALL=C rest
    __cb_v=
    [[ $__cb_line == *"\"$1\""*([[:space:]]):* ]] || return 1
    rest=${__cb_line#*\"$1\"*([[:space:]]):}
    rest=${rest#"${rest%%[![:space:]]*}"}
    if [[ $rest == \"* ]]; then
        # up to the closing quote (${rest%%\"*} would be quadratic on a long string)
        IFS='"' read -r -d '' __cb_v _ <<<"${rest#\"}"
        __cb_v=\"$__cb_v\"
    else
        __cb_v=${rest%%[,\}]*}
        __cb_v=${__cb_v%%*([[:space:]])}
    fi
}

# __cb_str KEY: the decoded string value of KEY into __cb_v (NULs dropped).
__cb_str() {
    __cb_raw "$1" || return 1
    local LC_ALL=C s=${__cb_v#\"}
    s=${s%\"}
    s=${s//\\\//\/}
    s=${s//$'\x02'/\\x22}
    s=${s//$'\x01'/\\\\}
    LC_ALL=C.UTF-8 printf -v __cb_v '%b' "$s"
}

# __cb_str_to_file KEY FILE: the decoded string value of KEY written to FILE (NULs kept).
__cb_str_to_file() {
    __cb_raw "$1" || { : >"$2"; return 1; }
    local LC_ALL=C s=${__cb_v#\"}
    s=${s%\"}
    s=${s//\\\//\/}
    s=${s//$'\x02'/\\x22}
    s=${s//$'\x01'/\\\\}
    LC_ALL=C.UTF-8 printf '%b' "$s" >"$2"
}

# __cb_json TEXT: TEXT as a JSON string literal into __cb_j.
__cb_json() {
    local LC_ALL=C s=$1 i c
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    if [[ $s == *[$'\x01'-$'\x1f']* ]]; then
        for ((i = 1; i < 32; i++)); do
            printf -v c "\\x$(printf %02x "$i")"
            printf -v __cb_j '\\u%04x' "$i"
            s=${s//"$c"/$__cb_j}
        done
    fi
    __cb_j="\"$s\""
}

__cb_emit() { printf '%s\n' "$1" >&"$__cb_ev"; }

__cb_error() { # ENAME EVALUE [TRACEBACK LINE...]
    local n v tb=() line
    __cb_json "$1"; n=$__cb_j
    __cb_json "$2"; v=$__cb_j
    shift 2
    for line in "$@"; do
        __cb_json "$line"
        tb+=("$__cb_j")
    done
    local IFS=,
    __cb_emit "{\"ev\":\"error\",\"ename\":$n,\"evalue\":$v,\"traceback\":[${tb[*]}]}"
}

# ---- what cells can call --------------------------------------------------------------------

# display_image FILE: show a PNG (or SVG, JPEG, GIF) file as rich output.
display_image() {
    local f=${1-} mime data
    if [[ -z $f || ! -f $f || ! -r $f ]]; then
        echo "display_image: cannot read '${f}'" >&2
        return 1
    fi
    case ${f,,} in
    *.svg)
        data=$(<"$f")
        __cb_json "$data"
        __cb_emit "{\"ev\":\"display\",\"data\":{\"image/svg+xml\":$__cb_j,\"text/plain\":\"<image>\"},\"metadata\":{}}"
        return 0
        ;;
    *.jpg | *.jpeg) mime=image/jpeg ;;
    *.gif) mime=image/gif ;;
    *) mime=image/png ;;
    esac
    data=$(base64 -w0 <"$f") || return 1
    __cb_emit "{\"ev\":\"display\",\"data\":{\"$mime\":\"$data\",\"text/plain\":\"<image>\"},\"metadata\":{}}"
}
show_image() { display_image "$@"; }

# ---- requests -------------------------------------------------------------------------------

# While unwinding an interrupted cell: return from every function and sourced file until this
# script's own top level runs again.
__cb_unwind() {
    if [[ ${FUNCNAME[1]-main} == main ]]; then
        trap - DEBUG
        shopt -u extdebug
        return 0
    fi
    return 2
}

__cb_word_at_cursor() { # sets __cb_word and __cb_pos from __cb_code and cursor_pos
    __cb_raw cursor_pos
    local LC_ALL=C.UTF-8 pre
    __cb_pos=${__cb_v//[^0-9]/}
    __cb_pos=${__cb_pos:-${#__cb_code}}
    ((__cb_pos > ${#__cb_code})) && __cb_pos=${#__cb_code}
    pre=${__cb_code:0:__cb_pos}
    __cb_word=${pre##*[[:space:];|&()<>\"\'=\`]}
    __cb_wlen=${#__cb_word}
}

__cb_complete() {
    __cb_str code
    __cb_code=$__cb_v
    __cb_word_at_cursor
    local m matches=() prefix= w=$__cb_word
    if [[ $w == \$* ]]; then
        prefix=\$
        w=${w#\$}
        w=${w#\{}
        prefix=${__cb_word%"$w"}
        mapfile -t matches < <(compgen -v -- "$w" | sort -u | head -n 1000)
    else
        mapfile -t matches < <(compgen -A function -A variable -A command -f -- "$w" 2>/dev/null |
            sort -u | head -n 1000)
    fi
    local out=()
    for m in "${matches[@]}"; do
        [[ $m == __cb_* ]] && continue
        __cb_json "$prefix$m"
        out+=("$__cb_j")
    done
    local IFS=,
    __cb_emit "{\"ev\":\"complete_reply\",\"matches\":[${out[*]}],\"cursor_start\":$((__cb_pos - __cb_wlen)),\"cursor_end\":$__cb_pos,\"metadata\":{}}"
}

__cb_inspect() {
    __cb_str code
    __cb_code=$__cb_v
    __cb_word_at_cursor
    local text post=${__cb_code:__cb_pos}
    post=${post%%[[:space:];|&()<>\"\'=\`]*}
    __cb_word+=$post
    if [[ -n $__cb_word ]] && text=$(type -- "$__cb_word" 2>/dev/null); then
        __cb_json "$text"
        __cb_emit "{\"ev\":\"inspect_reply\",\"found\":true,\"data\":{\"text/plain\":$__cb_j},\"metadata\":{}}"
    else
        __cb_emit '{"ev":"inspect_reply","found":false,"data":{},"metadata":{}}'
    fi
}

__cb_is_complete() {
    __cb_str code
    local err
    if err=$("$BASH" -n -c "$__cb_v" 2>&1); then
        __cb_emit '{"ev":"is_complete_reply","status":"complete"}'
    elif [[ $err == *"unexpected end of file"* || $err == *"unexpected EOF"* ]]; then
        __cb_emit '{"ev":"is_complete_reply","status":"incomplete","indent":""}'
    else
        __cb_emit '{"ev":"is_complete_reply","status":"invalid"}'
    fi
}

# Whether the cell in $__cb_cell parses, without running it and without a fork (a `bash -n`
# costs milliseconds): its text becomes the body of a function that is defined, not called. The
# message of a failure is left in __cb_err. (Code with an unbalanced '}' could close the body
# early; what follows it would run here, which only such contrived code can notice.)
__cb_parses() {
    local text
    IFS= read -r -d '' text <"$__cb_cell"
    if eval "__cb_parse_check() {
:
$text
}" 2>"$__cb_dir/err"; then
        unset -f __cb_parse_check
        return 0
    fi
    IFS= read -r -d '' __cb_err <"$__cb_dir/err"
    __cb_err=${__cb_err%$'\n'}
    # "driver.sh: eval: line 221: ..." -> "line 2: ...", the line in the cell
    local out= re='(^|'$'\n'')[^'$'\n'']*eval: line ([0-9]+): '
    while [[ $__cb_err =~ $re ]]; do
        out+=${__cb_err%%"${BASH_REMATCH[0]}"*}${BASH_REMATCH[1]}"line $((BASH_REMATCH[2] - __cb_line_base)): "
        __cb_err=${__cb_err#*"${BASH_REMATCH[0]}"}
    done
    __cb_err=$out$__cb_err
    # The function's own closing brace is where an unfinished cell (an if without fi) fails.
    local lines=()
    mapfile -t lines <"$__cb_cell" # (counting newlines with ${text//[!$'\n']/} is quadratic)
    local n=${#lines[@]} nl=${#lines[@]}
    [[ $text == *$'\n' ]] || nl=$((nl - 1))
    if [[ $__cb_err == "line $((nl + 2)): syntax error near unexpected token \`}'"* ]]; then
        __cb_err="line $n: syntax error: unexpected end of file"
    fi
    [[ -n $__cb_err ]] || __cb_err="syntax error"
    return 1
}
# Which line eval reports for the cell's first line: learnt once from a cell ")".
__cb_line_base=0
printf ')\n' >"$__cb_cell"
if ! __cb_parses && [[ $__cb_err =~ ^line\ ([0-9]+): ]]; then
    __cb_line_base=$((BASH_REMATCH[1] - 1))
fi

__cb_json "$BASH_VERSION"
__cb_emit "{\"ev\":\"ready\",\"version\":$__cb_j}"

# The loop is at the top level on purpose (see the head of this file).
while IFS= read -r -u "$__cb_req" __cb_line; do
    __cb_swap
    __cb_raw op
    case $__cb_v in
    '"execute"')
        __cb_str_to_file code "$__cb_cell"
        if ! __cb_parses; then
            __cb_error SyntaxError "${__cb_err%%$'\n'*}" "$__cb_err"
            __cb_emit '{"ev":"done"}'
            continue
        fi
        __cb_intr=
        __cb_in_cell=1
        trap '__cb_intr=1; shopt -s extdebug; trap __cb_unwind DEBUG' INT
        source "$__cb_cell"
        __cb_status=$?
        trap '' INT
        trap - DEBUG
        shopt -u extdebug
        __cb_in_cell=
        if [[ -n $__cb_intr ]]; then
            __cb_error Interrupted "the cell was interrupted" "Interrupted: the cell was interrupted"
        elif ((__cb_status != 0)); then
            __cb_error ExitCode "exit status $__cb_status" "ExitCode: the cell's last command exited with status $__cb_status"
        fi
        __cb_emit '{"ev":"done"}'
        ;;
    '"complete"') __cb_complete ;;
    '"inspect"') __cb_inspect ;;
    '"is_complete"') __cb_is_complete ;;
    *) ;; # input_reply outside a request, or unknown: nothing to answer
    esac
done
exit 0
