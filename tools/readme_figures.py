"""Keep the README's figures equal to the study outputs they quote.

A quoted figure stands between markers in README.md::

    <!-- figure: analysis/energy_study.md -->
    | ... the first markdown table of that file ... |
    <!-- /figure -->

(``analysis/x.md#2`` quotes its second table.) This script rewrites every such block from its
source; ``--check`` changes nothing and exits 1 naming the figures that drifted. The study
scripts themselves are checked against their outputs by ``tests/test_figures.py``.

    python tools/readme_figures.py [--check]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- figure: (?P<src>[^ ]+) -->\n)(?P<body>.*?)(<!-- /figure -->)", re.S)


def tables(text: str) -> list[str]:
    """The markdown tables of ``text`` (runs of lines starting with ``|``), in order."""
    out: list[list[str]] = []
    run: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            run.append(line)
        elif run:
            out.append(run)
            run = []
    return ["\n".join(t) + "\n" for t in out]


def refreshed(readme: str) -> tuple[str, list[str]]:
    """README text with every figure block rewritten, and the sources whose block changed."""
    changed: list[str] = []

    def fill(m: re.Match[str]) -> str:
        src = m.group("src")
        path, _, index = src.partition("#")
        found = tables((ROOT / path).read_text(encoding="utf-8"))
        n = int(index or 1)
        if not 1 <= n <= len(found):
            raise SystemExit(f"README figure {src}: {path} has {len(found)} table(s)")
        if m.group("body") != found[n - 1]:
            changed.append(src)
        return m.group(1) + found[n - 1] + m.group(4)

    return BLOCK.sub(fill, readme), changed


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new, changed = refreshed(text)
    if "--check" in argv:
        if changed:
            print(f"README figures drifted from their sources: {', '.join(changed)}; run "
                  f"python tools/readme_figures.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    print(f"refreshed {len(changed)} figure(s): {', '.join(changed) or 'none changed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
