"""Run one of Pensieve's Python 2 scripts (test/bb.py, ...) unmodified, under Python 2 or 3.

    python pensieve_shim.py PATH/TO/pensieve/test/bb.py

run in the working directory the script expects (cooked_traces/, video_size_N, results/).
This file is a program, not a module of ours: `player.lab.fidelity.pensieve` starts it in a
subprocess with the Python the user chose, and it imports nothing but the standard library
(and runs under Python 2.7 as well as 3).

Under Python 2 the script runs as it is. Under Python 3, the script and the modules it
imports from its own folder (fixed_env, load_trace) are read from disk and compiled with
Python 2's meaning where the two languages differ in what Pensieve's test scripts use; the
files are never written:

- a `print` statement becomes a call (`print a, b` prints "a b"; a trailing comma ends the
  line with a space instead; `print >>f, a` writes to f);
- `/` between two integers (Python ints or numpy integer scalars and arrays) is floor
  division, as in Python 2 without `from __future__ import division` (`x /= y` too, when x
  is a plain name);
- `xrange` is `range`;
- a file opened in binary mode (Pensieve opens its logs with 'wb' and writes str) is opened
  as text, byte-transparent (latin-1, no newline translation), as Python 2's str is bytes.

Anything else Python 3 does not accept fails as it would, with its traceback on stderr.
"""
import os
import sys


def _py2_div(a, b):
    """Python 2's `/`: floor division when both operands are integers, else true division."""
    if _is_integer(a) and _is_integer(b):
        return a // b
    return a / b


def _is_integer(x):
    import numbers
    if isinstance(x, numbers.Integral):   # int, bool, numpy integer scalars
        return True
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    return kind in ("i", "u", "b")


def _py2_open(name, mode="r", *args, **kwargs):
    """`open` as Python 2's str-is-bytes code expects it: binary modes give text files that
    carry every byte unchanged."""
    import io
    if "b" in mode:
        return io.open(name, mode.replace("b", ""), encoding="latin-1", newline="")
    return io.open(name, mode, *args, **kwargs)


def _statement_prints(source):
    """Python 2 `print` statements rewritten as calls, everything else untouched."""
    import io
    import tokenize
    toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    line_starts = [0]
    for line in source.splitlines(True):
        line_starts.append(line_starts[-1] + len(line))

    def at(pos):
        return line_starts[pos[0] - 1] + pos[1]

    edits = []   # (start, end, text)
    prev = None  # the previous significant token
    for i, tok in enumerate(toks):
        if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            continue
        at_start = prev is None or prev.type == tokenize.NEWLINE or prev.string in (":", ";")
        if tok.type == tokenize.NAME and tok.string == "print" and at_start:
            args = _statement_tokens(toks, i + 1)
            if not args or args[0].string not in ("(", "=", ".", "["):
                end = at(args[-1].end) if args else at(tok.end)
                edits.append((at(tok.start), end, _print_call(source, at, args)))
        prev = tok
    out = source
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    return out


def _statement_tokens(toks, j):
    """The significant tokens from toks[j] to the end of the simple statement."""
    import tokenize
    depth, out = 0, []
    for t in toks[j:]:
        if t.type in (tokenize.NEWLINE, tokenize.ENDMARKER) or (depth == 0 and t.string == ";"):
            break
        if t.type in (tokenize.NL, tokenize.COMMENT):
            continue
        if t.string in ("(", "[", "{"):
            depth += 1
        elif t.string in (")", "]", "}"):
            depth -= 1
        out.append(t)
    return out


def _print_call(source, at, args):
    """The call a print statement with these argument tokens means in Python 3."""
    def text(first, last):
        return source[at(first.start):at(last.end)]
    extra = []
    if args and args[0].string == ">>":          # print >>f, a, b
        comma = next((k for k, t in enumerate(args) if t.string == ","), None)
        target = args[1:comma] if comma is not None else args[1:]
        extra.append("file=" + text(target[0], target[-1]))
        args = args[comma + 1:] if comma is not None else []
    if args and args[-1].string == ",":           # print a,  (no newline)
        extra.insert(0, "end=' '")
        args = args[:-1]
    parts = ([text(args[0], args[-1])] if args else []) + extra
    return "print(" + ", ".join(parts) + ")"


def _py2_compile(source, filename):
    """Compile Python 2 source under Python 3 with Python 2's meaning (see the docstring)."""
    import ast
    tree = ast.parse(_statement_prints(source), filename)

    class Division(ast.NodeTransformer):
        def visit_BinOp(self, node):
            self.generic_visit(node)
            if isinstance(node.op, ast.Div):
                return ast.copy_location(ast.Call(ast.Name("__py2_div__", ast.Load()), [node.left, node.right], []),
                                         node)
            return node

        def visit_AugAssign(self, node):
            self.generic_visit(node)
            if isinstance(node.op, ast.Div) and isinstance(node.target, ast.Name):
                call = ast.Call(ast.Name("__py2_div__", ast.Load()), [ast.Name(node.target.id, ast.Load()), node.value],
                                [])
                return ast.copy_location(ast.Assign([node.target], call), node)
            return node

    tree = ast.fix_missing_locations(Division().visit(tree))
    return compile(tree, filename, "exec")


def _py2_globals(namespace):
    namespace["__py2_div__"] = _py2_div
    namespace["xrange"] = range
    namespace["open"] = _py2_open
    return namespace


class _Py2Finder(object):
    """Imports the modules of the script's own folder as Python 2 (importlib meta path)."""

    def __init__(self, folder):
        self.folder = folder

    def find_spec(self, fullname, path=None, target=None):
        import importlib.util
        if "." in fullname:
            return None
        candidate = os.path.join(self.folder, fullname + ".py")
        if not os.path.isfile(candidate):
            return None
        return importlib.util.spec_from_file_location(fullname, candidate, loader=_Py2Loader(candidate))


class _Py2Loader(object):
    def __init__(self, path):
        self.path = path

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        with open(self.path) as fh:
            code = _py2_compile(fh.read(), self.path)
        _py2_globals(module.__dict__)
        exec(code, module.__dict__)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: pensieve_shim.py SCRIPT.py (run in the folder the script expects)\n")
        return 2
    script = os.path.abspath(argv[1])
    folder = os.path.dirname(script)
    sys.path.insert(0, folder)
    sys.argv = [script]
    if sys.version_info[0] < 3:
        import runpy
        runpy.run_path(script, run_name="__main__")
        return 0
    sys.meta_path.insert(0, _Py2Finder(folder))
    with open(script) as fh:
        code = _py2_compile(fh.read(), script)
    namespace = _py2_globals({"__name__": "__main__", "__file__": script, "__builtins__": __builtins__})
    exec(code, namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
