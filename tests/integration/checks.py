"""checks.py: the small check-and-report helper the Python integration scripts share.

    from checks import check, finish
    check(cond, "what must hold", "detail shown when it fails")
    sys.exit(finish())     # prints a summary; 0 when every check held, 1 otherwise
"""
failures = []


def check(cond, what, detail=""):
    """Print "ok - what" or "FAIL - what: detail"; remember failures. Returns cond."""
    if cond:
        print(f"ok - {what}", flush=True)
    else:
        print(f"FAIL - {what}{': ' + detail if detail else ''}", flush=True)
        failures.append(what)
    return cond


def finish():
    """Print the summary line and return the exit status."""
    if failures:
        print(f"{len(failures)} check(s) failed: {failures}", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0
